space s
qubits 3
depth 2
pattern ent = cnot(q, q + 1) for q in 0 .. n - 2
