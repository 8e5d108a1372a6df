space s
qubits 3
depth 3
pattern ent = choose { cnot(0, 1) | cz(0, 1) }
layer = ry(q, theta[layer, q]) for q in all ; h(0) ; choose { ent | h(1) }
