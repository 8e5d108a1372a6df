space s
qubits 3
depth 3
layer = ry(q, theta[layer, q] // 2) for q in all
