"""How many bits would a hyperprior with channel-group context save on shae-v8's own symbols?

shae-v8's transforms stay frozen; its nearest-center symbols of 256x256 training crops (one random
level each) train a side latent (Balle et al., ICLR 2018) and per-group Gaussian parameters
conditioned on the groups before (Minnen & Singh, ICIP 2020), as shae-v9's entropy model does.
Then every level of data/val and data/detail is priced under shae-v8's context tables (exact) and
under the new model (its float estimate, side latent included).

    python docs/experiments/v8-hyperprior/hyperprior_on_v8.py STEPS BATCHES_OF_8_CROPS
    python docs/experiments/v8-hyperprior/hyperprior_on_v8.py 3000 150     # run.log
"""
import math, sys, time
import numpy as np, torch
from torch import nn
from torch.nn import functional as F
from imgcodec.train.training import load_model
from imgcodec.train.data import load_images, CropSampler
from imgcodec.train.shae_v9 import gaussian_bin_log2_at, _conv, _deconv
from imgcodec.train.quantizer import SoftToHardQuantizer
torch.set_num_threads(2)
torch.manual_seed(0)
STEPS = int(sys.argv[1]); GROUPS = (5, 5, 10, 15); HZ = 32; NF = 96; P = 128
m, _ = load_model('checkpoints/shae-v8.pt'); fr = m.freeze()
centers = torch.from_numpy(fr.centers.astype(np.float32))
L = len(centers); C = 35

@torch.no_grad()
def symbols_of(x, level):  # x N,3,H,W in [0,1] -> N,C,h,w sorted-center symbols
    lat = m.analysis(x, level) * m.log_gain[level].exp()[:, :, None, None]
    return torch.from_numpy(np.searchsorted(fr.thresholds, lat.numpy())).long()

# precompute training symbols
t0 = time.time()
sampler = CropSampler(load_images('data/train'), 256, 1)
rng = np.random.default_rng(2)
train = []
for k in range(int(sys.argv[2])):
    b = torch.from_numpy(sampler.batch(8)).permute(0, 3, 1, 2).float() / 255
    lv = torch.from_numpy(rng.integers(0, 10, 8))
    train.append(symbols_of(b, lv))
train = torch.cat(train); print('precomputed', train.shape, time.time() - t0, flush=True)

class Group(nn.Module):
    def __init__(self, g):
        super().__init__(); before = sum(GROUPS[:g])
        self.ctx = nn.Conv2d(before, 64, 5, padding=2) if before else None
        self.net = nn.Sequential(nn.Conv2d(P + (64 if before else 0), 160, 1), nn.LeakyReLU(0.1), nn.Conv2d(160, 96, 1), nn.LeakyReLU(0.1), nn.Conv2d(96, 2 * GROUPS[g], 1))
    def forward(self, hyper, dec):
        f = hyper if self.ctx is None else torch.cat([hyper, self.ctx(dec)], 1)
        return self.net(f).chunk(2, 1)

class EM(nn.Module):
    def __init__(self):
        super().__init__()
        self.ha = nn.Sequential(_conv(C, NF, 3, 1), nn.LeakyReLU(0.1), _conv(NF, NF), nn.LeakyReLU(0.1), _conv(NF, HZ))
        self.hs = nn.Sequential(_deconv(HZ, NF), nn.LeakyReLU(0.1), _deconv(NF, NF), nn.LeakyReLU(0.1), _conv(NF, P, 3, 1))
        self.groups = nn.ModuleList(Group(g) for g in range(len(GROUPS)))
        self.q = SoftToHardQuantizer(31, 15); self.zlog = nn.Parameter(torch.zeros(HZ, 31))
    def forward(self, sym):  # -> bits per image (y, z)
        y = centers[sym]
        z = self.ha(y / 8)
        qz = self.q(z)
        zlp = torch.log_softmax(self.zlog, -1) / math.log(2)
        target = F.one_hot(qz.indices, 31).float() + (qz.soft - qz.soft.detach())
        zbits = -(target * zlp[None, :, None, None, :]).sum((1, 2, 3, 4))
        hyper = self.hs(qz.values)
        ybits = 0; s = 0
        for g, size in enumerate(GROUPS):
            mean, ls = self.groups[g](hyper, y[:, :s] / 8 if s else None)
            scale = (ls.exp() * 1).clamp_min(0.11)
            ybits = ybits - gaussian_bin_log2_at(centers, mean * 8, scale * 1, sym[:, s:s + size]).sum((1, 2, 3))
            s += size
        return ybits, zbits

em = EM(); opt = torch.optim.Adam(em.parameters(), 1e-3)
n = len(train)
t0 = time.time()
for step in range(STEPS):
    em.q.sigma = 2 + 8 * step / STEPS
    if step == int(STEPS * 0.8):
        for gr in opt.param_groups: gr['lr'] = 1e-4
    idx = torch.from_numpy(rng.integers(0, n, 16))
    sym = train[idx]
    if rng.random() < 0.5: sym = sym.flip(3)
    crop = rng.integers(0, 17, 2)  # random 16x16 of the 32x32 latents
    sym = sym[:, :, crop[0]:crop[0] + 16, crop[1]:crop[1] + 16]
    yb, zb = em(sym)
    loss = (yb + zb).mean() / (16 * 16 * 64)  # bits per pixel
    opt.zero_grad(); loss.backward(); opt.step()
    if step % 200 == 0: print(step, float(loss.detach()), float(zb.mean() / yb.mean()), time.time() - t0, flush=True)

# evaluate on val and detail: v8 tables (nearest) vs this model (estimate)
em.eval(); q = em.q; q.sigma = 1e4
for split in ('val', 'detail'):
    imgs = load_images('data/' + split)
    tot8 = np.zeros(10); totn = np.zeros(10); pix = 0
    for im in imgs:
        h, w = im.shape[:2]; H, W = -(-h // 32) * 32, -(-w // 32) * 32
        pad = np.pad(im, ((0, H - h), (0, W - w), (0, 0)), mode='edge')
        x = torch.from_numpy(np.ascontiguousarray(pad.transpose(2, 0, 1))).float()[None] / 255
        pix += h * w
        for lv in range(10):
            sym = symbols_of(x, torch.tensor([lv]))
            tot8[lv] += fr.prior.cross_entropy_bits(sym[0].numpy(), lv)
            with torch.no_grad():
                yb, zb = em(sym)
            totn[lv] += float(yb + zb)
    print(split, 'bpp v8 prior', np.round(tot8 / pix, 4))
    print(split, 'bpp new     ', np.round(totn / pix, 4))
    print(split, 'saving %    ', np.round(100 * (1 - totn / tot8), 1), flush=True)
