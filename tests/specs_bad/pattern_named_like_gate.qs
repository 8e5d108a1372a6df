space s
qubits 3
depth 2
pattern h = cnot(0, 1)
layer = h ; ry(q, theta[layer, q]) for q in all
