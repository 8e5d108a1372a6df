"""The classical stand-in models of the A3C engine tests: tanh MLPs built as task networks.

The engine takes any target network and parameter source; these are the task's own
(qtc.tasks.network.TargetNet from a network spec, qtc.runtime.generator.ClassicalParams), sized
like the paper's actor 147->32->32->7 (6,023) and critic 147->32->32->1 (5,825).
"""
from __future__ import annotations

from qtc.dsl.task import parse_task
from qtc.runtime.generator import ClassicalParams
from qtc.tasks.network import TargetNet

OBS_SIZE, NUM_ACTIONS = 147, 7


def tanh_mlp(sizes: tuple[int, ...]) -> TargetNet:
    """Linear layers of `sizes` with tanh between them; flat layout W, b per layer (nn.Linear)."""
    layers = [f"linear {i} -> {o}" for i, o in zip(sizes, sizes[1:])]
    body = " ; tanh\n".join(layers)
    text = (f"task mlp : a3c\nenv MiniGrid-Empty-5x5-v0\nnetwork actor {{\n  input [{sizes[0]}]\n"
            f"  {body}\n}}\ntrain adam\n")
    return TargetNet(parse_task(text).networks["actor"])


def init_flat(net: TargetNet):
    """A flat vector initialised like the network's nn.Linear layers."""
    return net.flatten_module(net.module())


def make_classical_model(hidden: tuple[int, ...] = (32, 32)):
    """The paper's classical actor-critic as (actor source, critic source, actor, critic)."""
    actor = tanh_mlp((OBS_SIZE, *hidden, NUM_ACTIONS))
    critic = tanh_mlp((OBS_SIZE, *hidden, 1))
    return ClassicalParams(init_flat(actor)), ClassicalParams(init_flat(critic)), actor, critic
