# The full product space over two layers: every layer chooses its entangler and its rotation
# on its own (`untie layers`), so there are 2 x (2 x 2)^2 = 32 candidates, labelled
# "<init>-<layer 0>/<layer 1>", e.g. "H-chain-RY/none-RZ".
space untied_two_layer
qubits 4
depth 2

# a CNOT ladder 0->1->2->...->n-1 (no wrap-around)
pattern chain = cnot(q, q + 1) for q in 0 .. n - 2

init  = choose { H: h(q) for q in all | none: nothing }
layer = choose { chain | none: nothing } ;
        choose { ry(q, theta[layer, q]) for q in all | rz(q, theta[layer, q]) for q in all }
untie layers
limit 64                    # refuse to enumerate more than 64 candidates
weights raw init 1 / C      # C = the number of candidates
angles normal(0, 0.1)
