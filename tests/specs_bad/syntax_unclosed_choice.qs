space s
qubits 3
depth 2
init = choose { H: h(q) for q in all | none: nothing
layer = ry(q, theta[layer, q]) for q in all
