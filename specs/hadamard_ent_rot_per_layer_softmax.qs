# The paper's space untied, as hadamard_ent_rot_per_layer.qs, with softmax per-position weights:
# every position's weights are the logits of a distribution over its alternatives, what
# sampled search (`search sampled K` on a task's generator) draws architectures from. The
# exact forms (channel, enumeration) train it as well, as a softmax mixture.
space hadamard_ent_rot_per_layer_softmax
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
weights softmax per position init 0     # the logits of each position's distribution (uniform)
angles normal(0, 0.01)
