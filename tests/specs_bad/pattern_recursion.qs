space s
qubits 3
depth 2
pattern a = h(0) ; b
pattern b = a
layer = a ; ry(q, theta[layer, q]) for q in all
