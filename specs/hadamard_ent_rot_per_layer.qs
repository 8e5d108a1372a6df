# The paper's space with every layer choosing on its own (`untie layers`) and one weight vector
# per choice (`weights ... per position`): init (H | none), then per layer an entangler
# (ent | cyc) and a rotation (RX | RY | RZ). At 11 qubits and depth 10 that is
# 2 x 6^10 = 120,932,352 candidates, far past enumeration: the compiler lowers it to the
# channel form (one density matrix, 4^n entries; see compiler/factorised.py).
space hadamard_ent_rot_per_layer
qubits auto 11
depth 10

pattern ent = cnot(q, q + 1) for q in 0 .. n - 2 step 2 ; cnot(q, q + 1) for q in 1 .. n - 2 step 2
pattern cyc = cnot(q, (q + 1) % n) for q in 0 .. n - 1

init  = choose { H: h(q) for q in all | none: nothing }
layer = choose { ent | cyc } ;
        choose { rx(q, theta[layer, q]) for q in all
               | ry(q, theta[layer, q]) for q in all
               | rz(q, theta[layer, q]) for q in all }
untie layers
weights raw per position init 1 / C     # C = the position's number of alternatives
angles normal(0, 0.01)
