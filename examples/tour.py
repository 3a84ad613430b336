# %% [markdown]
# # A tour of lgc: train a tiny logic gate network, then look inside it
#
# Runs as a script (`python examples/tour.py`, ~30 s on 2 cores, offline) or cell by cell in an
# editor that understands `# %%` (VS Code, Jupyter via jupytext, Spyder). It writes its figure
# to `lgc-tour/` in the system's temporary folder.

# %%
import pathlib
import tempfile

import numpy as np
import torch

import lgc
from lgc.data import load_dataset
from lgc.frontend import Binarize, GroupSum, LogicLayer

OUT = pathlib.Path(tempfile.gettempdir()) / "lgc-tour"
OUT.mkdir(exist_ok=True)
torch.manual_seed(0)

# %% [markdown]
# ## Data: scikit-learn's 8x8 digits, one binarisation rule
# Every pixel gets three thresholds (the training split's quartiles). The same rule feeds the
# PyTorch model (as a `Binarize` module), the lowered circuit (as its input encoder) and the
# compiled net, so all three see identical bits.

# %%
data = load_dataset("digits")
print(data)
x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)

# %% [markdown]
# ## Model and training: difflogic's layers, Adam, cross-entropy

# %%
model = torch.nn.Sequential(
    Binarize(data.thresholds, num_features=data.num_features),   # raw pixels -> 192 bits
    LogicLayer(data.num_inputs, 1000, connections="unique"),
    LogicLayer(1000, 1000),
    GroupSum(k=10, tau=3.0),
)
opt = torch.optim.Adam(model.parameters(), lr=0.01)
for step in range(600):
    idx = torch.randint(0, len(y_train), (64,))
    loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 200 == 0:
        print(f"step {step}: loss {loss.item():.3f}")
model.eval()
with torch.no_grad():
    eval_pred = model(torch.from_numpy(data.x_test)).argmax(-1).numpy()
print(f"eval-mode test accuracy: {np.mean(eval_pred == data.y_test):.2%}")

# %% [markdown]
# ## Lower to the gate-level IR and inspect it

# %%
circuit = lgc.lower(model)
print(circuit)
print(circuit.stats())

# %% [markdown]
# ## Optimise: every pass preserves the function (checked here by `equivalent`)

# %%
small, report = lgc.optimize(circuit, level=2, report=True)
print(report)
print("equivalent:", bool(lgc.passes.equivalent(circuit, small)))

# %% [markdown]
# ## Compile, and check the compiled net against the model
# The compiled net takes raw pixels (through the circuit's input encoder) or the bits.

# %%
print("targets here:", lgc.targets())
net = lgc.compile(small, target="cpu" if "cpu" in lgc.targets() else "numpy", opt_level=0)
compiled_pred = net.predict(data.x_test)
assert np.array_equal(compiled_pred, eval_pred), "the compiled net must predict what the model predicts"
print(f"{net.target}: compiled accuracy {np.mean(compiled_pred == data.y_test):.2%} (identical predictions)")

# %% [markdown]
# ## Draw part of the circuit: the input cone of class 0's first output that is a (non-constant) gate

# %%
from lgc.ir.draw import cone, draw_cone, interesting_output  # noqa: E402

node = interesting_output(small)
print(f"node {node}: {len(cone(small, node, depth=3))} nodes within 3 levels")
draw_cone(small, node, OUT / "cone.png", depth=3)
print("wrote", OUT / "cone.png")

# %% [markdown]
# ## Gate types the network learned

# %%
from lgc.ir.ops import OP_NAMES  # noqa: E402

counts = np.bincount(circuit.op, minlength=16)
for name, c in sorted(zip(OP_NAMES, counts), key=lambda t: -t[1])[:6]:
    print(f"{name:>8s} {c}")
