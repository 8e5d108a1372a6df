space s
qubits 3
depth 0
layer = ry(q, theta[layer, q]) for q in all
