space s
qubits 3
depth 2
init = choose { h(q) for q in all | h(q) for q in 0 .. 1 }
layer = ry(q, theta[layer, q]) for q in all
