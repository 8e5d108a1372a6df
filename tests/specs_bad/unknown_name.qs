space s
qubits 3
depth 2
layer = ry(q, theta[layer, k]) for q in all
