space s
qubits 3
depth 2
pattern ent = cnot(q, q + 1) for q in 0 .. n - 2
pattern cyc = cnot(q, (q + 1) % n) for q in all
layer = choose { ent | cyk } ; ry(q, theta[layer, q]) for q in all
