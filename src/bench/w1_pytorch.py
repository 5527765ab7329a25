# W1 (docs/workloads.md) in PyTorch, the peer that scoregen's W1 quality figures are
# set beside on the same machine: train the score MLP for N steps with W1's exact settings,
# annealed Langevin sampling of 10,000 chains, sliced W2 (256 directions) to fresh ground truth
# and mean log-density under the true mixture. It scores scoregen's .npy samples with the same
# code, so both sides are measured by one estimator:
#   python3 src/bench/w1_pytorch.py 550 0 1 2          # PyTorch, training seeds 0, 1, 2
#   python3 src/bench/w1_pytorch.py npy samples.npy    # score `scoregen sample --out x.npy`
# (needs torch and numpy; not part of the Rust build or the tests).
import sys, math, time, numpy as np, torch
torch.set_num_threads(2)

MEANS = np.array([[4*math.cos(k*math.pi/4), 4*math.sin(k*math.pi/4)] for k in range(8)])
STD = 0.3

def gt(n, rng):
    k = rng.integers(0, 8, n)
    return MEANS[k] + STD * rng.standard_normal((n, 2))

def log_p(x):
    d2 = ((x[:, None, :] - MEANS[None]) ** 2).sum(-1)
    lc = -d2 / (2*STD**2) - math.log(2*math.pi*STD**2) - math.log(8)
    m = lc.max(1, keepdims=True)
    return (m[:, 0] + np.log(np.exp(lc - m).sum(1)))

def sliced_w2(a, b, dirs=256, seed=1):
    rng = np.random.default_rng(seed); tot = 0.0
    for _ in range(dirs):
        d = rng.standard_normal(2); d /= np.linalg.norm(d)
        pa, pb = np.sort(a @ d), np.sort(b @ d)
        m = max(len(pa), len(pb)); i = (np.arange(m) + 0.5) / m
        tot += ((pa[(i*len(pa)).astype(int)] - pb[(i*len(pb)).astype(int)])**2).mean()
    return math.sqrt(tot / dirs)

def metrics(x, seed=12345):
    x = x[np.isfinite(x).all(1)]
    g = gt(10000, np.random.default_rng(seed))
    return sliced_w2(x, g), log_p(x).mean()

def net():
    return torch.nn.Sequential(torch.nn.Linear(3,256), torch.nn.SiLU(), torch.nn.Linear(256,256), torch.nn.SiLU(),
                               torch.nn.Linear(256,256), torch.nn.SiLU(), torch.nn.Linear(256,2))

def score(f, x, s):
    return f(torch.cat([x, (s.log()/4).expand(x.shape[0], 1)], 1)) / s

def run(steps, seed):
    torch.manual_seed(seed); rng = np.random.default_rng(seed)
    f = net(); opt = torch.optim.Adam(f.parameters(), lr=1e-3)
    t0 = time.time()
    for i in range(steps):
        x = torch.tensor(gt(4096, rng), dtype=torch.float32)
        s = torch.exp(torch.rand(4096, 1) * (math.log(10) - math.log(0.01)) + math.log(0.01))
        z = torch.randn_like(x)
        loss = ((f(torch.cat([x + s*z, s.log()/4], 1)) + z) ** 2).sum(1).mean()  # |sigma s + z|^2, s = f / sigma
        opt.zero_grad(); loss.backward(); opt.step()
    tt = time.time() - t0
    sig = np.exp(np.linspace(math.log(10), math.log(0.01), 10))
    with torch.no_grad():
        x = torch.randn(10000, 2) * 10; t0 = time.time()
        for s in sig:
            a = 5e-5 * s**2 / sig[-1]**2; st = torch.full((1, 1), float(s))
            for _ in range(100):
                x = x + a/2 * score(f, x, st) + math.sqrt(a) * torch.randn_like(x)
        st = torch.full((1, 1), float(sig[-1])); x = x + sig[-1]**2 * score(f, x, st)
        ts = time.time() - t0
    sw, lp = metrics(x.numpy().astype(np.float64))
    print(f"pytorch seed {seed} steps {steps}: sliced W2 {sw:.3f} mean log p {lp:.3f} (train {tt:.1f} s, sample {ts:.1f} s)", flush=True)

if __name__ == "__main__":
    if sys.argv[1] == "npy":
        for p in sys.argv[2:]:
            sw, lp = metrics(np.load(p).astype(np.float64).reshape(-1, 2))
            print(f"{p}: sliced W2 {sw:.3f} mean log p {lp:.3f}")
    else:
        steps = int(sys.argv[1])
        for s in sys.argv[2:]:
            run(steps, int(s))
