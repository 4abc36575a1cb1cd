"""Notebook-style example: train your own small SR network in memory, rank it against the zoo,
look at its DDR, and watch DDR grow while it trains. Run it cell by cell or as a script:

    python docs/notebook_example.py            # about a minute on 2 CPU cores
    DDR_EXAMPLE_TINY=1 python docs/notebook_example.py   # seconds (what the test runs)

Figures are written to ``$DDR_EXAMPLE_OUT`` (default ``reports/notebook-example``).
"""

# %% setup: sizes, a suite as a dict, an output folder
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import ddr_eval

TINY = bool(os.environ.get("DDR_EXAMPLE_TINY"))
OUT = Path(os.environ.get("DDR_EXAMPLE_OUT", "reports/notebook-example"))
STEPS, EVERY = (6, 3) if TINY else (300, 50)

suite = {
    "name": "notebook-example", "seed": 0, "scale": 2,
    "data": {"images": ["astronaut", "camera", "chelsea", "coins"] if TINY else None,
             "patch_size": 16 if TINY else 48, "patches_per_image": 3 if TINY else 16},
    "degradations": [
        {"name": "clean", "chain": [{"type": "bicubic"}]},
        {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic"}]},
        {"name": "noise", "chain": [{"type": "bicubic"}, {"type": "gaussian_noise", "sigma": 20}]},
    ],
    "models": ["srresnet-gr", "srresnet-nogr"],  # the zoo's pair with and without a global residual
    "metrics": [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 20 if TINY else 200},
                {"type": "psnr"}],
    "outputs": {"tsne_plots": False},
}


# %% your network: any nn.Module; ddr-eval needs its scale and which module's output to read
class MyNet(nn.Module):
    def __init__(self, feat: int = 16):
        super().__init__()
        self.head = nn.Conv2d(3, feat, 3, padding=1)
        self.body = nn.Sequential(*[nn.Sequential(nn.Conv2d(feat, feat, 3, padding=1), nn.ReLU()) for _ in range(3)])
        self.up = nn.Sequential(nn.Conv2d(feat, 12, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, x):
        residual = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.up(self.body(self.head(x))) + residual  # a global residual, as in srresnet-gr


torch.manual_seed(0)
net = MyNet()
layers = ["body.2"]  # the body's last block: "deep" features, before upsampling

# %% train it briefly, watching DDR every EVERY steps on fixed inputs of the same suite
monitor = ddr_eval.DDRMonitor(suite, every=EVERY, layers=layers, name="mynet", log_dir=OUT / "monitor",
                              metrics=[{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 0}])
hr_photo = torch.from_numpy(monitor.lr_sets["clean"]).permute(0, 3, 1, 2)  # any images will do for a demo
optimizer = torch.optim.Adam(net.parameters(), lr=2e-4)
generator = torch.Generator().manual_seed(0)
for iteration in range(STEPS + 1):
    monitor.step(net, iteration)  # a no-op except every EVERY iterations
    hr = hr_photo[torch.randint(len(hr_photo), (8,), generator=generator)]
    lr = F.interpolate(hr, scale_factor=0.5, mode="bicubic", align_corners=False, antialias=True)
    loss = F.l1_loss(net(lr), hr)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
curve = monitor.finish()  # monitor/ddr_over_training.png
print(monitor.frame()[["iteration", "metric", "set", "value"]].tail())

# %% rank it against the zoo: a DataFrame, ranked by mean per-metric rank
results = ddr_eval.evaluate(suite, models=net, name="mynet", layers=layers)
print(results.leaderboard)

# %% its features, and a plot of the leaderboard
blur = results.features("mynet", "body.2", "blur")
print("blur features:", blur.shape, "CHI of mynet:",
      ddr_eval.chi(np.concatenate([results.features("mynet", "body.2", s) for s in ("clean", "blur", "noise")]),
                   np.repeat(["clean", "blur", "noise"], len(blur)), bootstrap=0).value)
ax = results.leaderboard.plot.barh(x="model", y="chi[degradation,raw]", legend=False, title="DDR (CHI) by model")
OUT.mkdir(parents=True, exist_ok=True)
ax.figure.savefig(OUT / "leaderboard_chi.png", bbox_inches="tight")

# %% the same report the CLI writes
print("report:", results.write(OUT / "report"), "curve:", curve)
