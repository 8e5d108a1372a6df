# The paper's DiffQAS-QT search space (Table I): 2 x 2 x 3 = 12 candidates.
# Optional Hadamards once at the start; then `depth` layers of entangler + one rotation per
# qubit; one choice for all layers (tie layers); angles theta[layer, qubit] shared by all.
space hadamard_ent_rot
qubits auto 17              # sized by the task (ceil log2 of its parameters); 17 alone
depth 15

# brick-wall: all (2k, 2k+1) pairs, then all (2k+1, 2k+2) pairs, no wrap-around
pattern ent = cnot(q, q + 1) for q in 0 .. n - 2 step 2 ; cnot(q, q + 1) for q in 1 .. n - 2 step 2
# a ring: CNOT(i, i+1) for i = 0..n-2, then CNOT(n-1, 0)
pattern cyc = cnot(q, (q + 1) % n) for q in 0 .. n - 1

init  = choose { H: h(q) for q in all | none: nothing }
layer = choose { ent | cyc } ;
        choose { rx(q, theta[layer, q]) for q in all
               | ry(q, theta[layer, q]) for q in all
               | rz(q, theta[layer, q]) for q in all }
tie layers                  # one choice for every layer; `untie layers` = the full product space
weights raw init 1 / 12
angles normal(0, 0.01)
