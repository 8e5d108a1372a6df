space s
qubits 3
depth 2
pattern rot = ry(q, theta[layer, q]) for q in all
init = rot
layer = rot
