space s
qubits 31
depth 2
layer = ry(q, theta[layer, q]) for q in all
