space s
qubits 4
depth 15
pattern ent = cnot(q, q + 1) for q in 0 .. n - 2
init = choose { H: h(q) for q in all | none: nothing }
layer = choose { ent | none: nothing } ;
        choose { rx(q, theta[layer, q]) for q in all | ry(q, theta[layer, q]) for q in all }
untie layers
