space s
qubits 3
depth 2
layer = ry(q, theta[layer + 1, q]) for q in all
