space s
qubits 3
depth 2
layer = ry(q, theta[layer, q]) for q in all
angles gaussian(0, 0.01)
