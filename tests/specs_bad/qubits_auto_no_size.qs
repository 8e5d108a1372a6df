space s
qubits auto
depth 2
layer = ry(q, theta[layer, q]) for q in all
