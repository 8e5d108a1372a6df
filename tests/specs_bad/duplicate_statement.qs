space s
qubits 3
depth 2
layer = ry(q, theta[layer, q]) for q in all
depth 3
