space s
qubits 3
depth 2
init = ry(q, theta[0, q]) for q in all
layer = ry(q, theta[layer, q]) for q in all
