space s
qubits 3
dpeth 2
layer = ry(q, theta[layer, q]) for q in all
