"""The gated neural ODE vector field and its named reductions (Kim, Can & Krishnamurthy, ICML 2023, sec. 2).

    tau dh/dt = G(h, x) * (-h + F(h, x))                       GatedNODE (gnODE)

F and G are the feed-forward networks of `gnode.models.mlp` (depths L_h, L_z; F's output activation
phi_h in {identity, tanh}; G's output sigmoid). The reductions are the same class with settings fixed,
so they share every line of code:

    NeuralODE    G = 1:                 tau dh/dt = -h + F(h, x)        (leak=False: tau dh/dt = F(h, x),
                                                                          the form of Chen et al. 2018)
    MinimalGRU   L_h = L_z = 1:         tau dh/dt = sigmoid(W_z h + U_z x + b_z) * (-h + phi_h(W_h h + U_h x + b_h))
    ElmanRNN     G = 1, L_h = 1, and
                 form="rate" (default): tau dh/dt = -h + W phi(h) + U x + b     the rate network of the
                                        neuroscience literature (activation inside; Sompolinsky et al. 1988)
                 form="classical":      tau dh/dt = -h + phi(W h + U x + b)     the paper's L_h = 1 reduction

The rate form is the general model with F's `pre_activation` = phi and an identity output (F reads the
rates phi(h) instead of h); the two forms are related by the change of variables h_rate = W h_cl + U x + b
for constant inputs but are not the same function of their weights, so both are offered.
"""

from __future__ import annotations

import torch
from torch import nn

from gnode.models.flat import SPEC_VERSION, FlatParameters, dtype_name
from gnode.models.init import init_flow_, init_gate_, resolve_gain
from gnode.models.mlp import FeedForward

PHI_H = ("identity", "tanh")
PHI_A = ("relu", "tanh", "identity")
PRE_ACTIVATIONS = ("identity", "tanh", "relu")


def _check_size(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


class GatedNODE(FlatParameters, nn.Module):
    """The gnODE vector field  tau dh/dt = G(h, x) * (-h + F(h, x)),  row-wise: usable as `gnode.ODEProblem`'s f.

    n:            latent dimension N.
    d_in:         input dimension D (0: autonomous).
    depth_F, depth_G:  L_h, L_z, the number of affine layers of F and G.
    width_F, width_G:  hidden widths (int, or a list of L-1 ints; default n).
    phi_h:        output activation of F, "tanh" (default) or "identity".
    phi_a:        hidden activation of F and G when L > 1, "relu" (default, as the paper), "tanh", "identity".
    tau:          time constant (> 0); learn_tau=True makes it a parameter, stored as log_tau.
    leak:         keep the -h term (default). Without it the origin cannot be made stable (paper, sec. 2).
    gate:         False fixes G = 1 (the nODE).
    pre_activation: "identity" (default), or phi for the rate form in which F and G read phi(h).
    init, gain:   "stable" | "critical" | "chaotic" and the target radius g (see `gnode.models.init`).
    generator:    a torch.Generator for reproducible initialisation.

    forward(t (B,), h (B, n), x (B, d_in) or None) -> dh/dt (B, n); x=None means zero input.
    jacobian(...) -> (B, n, n), gates(...) -> G (B, n), timescales(...) -> tau / G (B, n).
    spec() / flat_parameters() / load_flat() and `gnode.models.from_spec` export and rebuild it.
    """

    def __init__(
        self,
        n: int,
        d_in: int = 0,
        *,
        depth_F: int = 1,
        depth_G: int = 1,
        width_F=None,
        width_G=None,
        phi_h: str = "tanh",
        phi_a: str = "relu",
        tau: float = 1.0,
        learn_tau: bool = False,
        leak: bool = True,
        gate: bool = True,
        pre_activation: str = "identity",
        init: str = "critical",
        gain: float | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        nn.Module.__init__(self)
        n = _check_size("n", n, 1)
        d_in = _check_size("d_in", d_in, 0)
        _check_choice("phi_h", phi_h, PHI_H)
        _check_choice("phi_a", phi_a, PHI_A)
        _check_choice("pre_activation", pre_activation, PRE_ACTIVATIONS)
        resolve_gain(init, gain)  # fail before building anything
        kw = {"dtype": dtype, "device": device}
        F = FeedForward.build(n, d_in, depth_F, width_F, phi_a, phi_h, pre_activation, name="F", **kw)
        G = (
            FeedForward.build(n, d_in, depth_G, width_G, phi_a, "sigmoid", pre_activation, name="G", **kw)
            if gate
            else None
        )
        self._setup(n, d_in, F, G, tau, learn_tau, leak)
        self.reset_parameters(init, gain, generator=generator)

    def _setup(
        self, n: int, d_in: int, F: FeedForward, G: FeedForward | None, tau: float, learn_tau: bool, leak: bool
    ) -> None:
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (0 < tau < float("inf")):
            raise ValueError(f"tau must be a positive finite number, got {tau!r}")
        self.n, self.d_in, self.leak = n, d_in, bool(leak)
        self.F, self.G = F, G
        self.learn_tau = bool(learn_tau)
        if self.learn_tau:
            like = F.layers[0].weight
            self.log_tau = nn.Parameter(torch.tensor(float(tau), dtype=like.dtype, device=like.device).log())
            self._tau = None
        else:
            self.register_parameter("log_tau", None)
            self._tau = float(tau)

    @classmethod
    def _from_parts(
        cls, n: int, d_in: int, F: FeedForward, G: FeedForward | None, tau: float, learn_tau: bool, leak: bool
    ) -> GatedNODE:
        """A model of this family from built networks, without drawing random numbers (used by `from_spec`)."""
        obj = cls.__new__(cls)
        nn.Module.__init__(obj)
        GatedNODE._setup(obj, n, d_in, F, G, tau, learn_tau, leak)
        return obj

    def reset_parameters(
        self, init: str = "critical", gain: float | None = None, generator: torch.Generator | None = None
    ) -> None:
        """Redraw F for regime `init` with gain `gain`, G variance-preserving, biases 0 (`gnode.models.init`)."""
        init_flow_(self.F, init, gain, generator)
        if self.G is not None:
            init_gate_(self.G, generator)

    # ---- the vector field -------------------------------------------------------------------------------

    @property
    def family(self) -> str:
        return type(self).__name__

    @property
    def gated(self) -> bool:
        return self.G is not None

    @property
    def tau(self) -> torch.Tensor:
        """The time constant as a 0-dim tensor (a parameter's exp when learnable)."""
        if self.log_tau is not None:
            return self.log_tau.exp()
        like = self.F.layers[0].weight
        return torch.tensor(self._tau, dtype=like.dtype, device=like.device)

    def _tau_divisor(self):
        return self.log_tau.exp() if self.log_tau is not None else self._tau

    def _check(self, h: torch.Tensor, x: torch.Tensor | None) -> None:
        if h.shape[-1] != self.n:
            raise ValueError(
                f"{self.family}: h has {h.shape[-1]} features (shape {tuple(h.shape)}) but the model has n={self.n}"
            )
        if x is not None:
            if self.d_in == 0:
                raise ValueError(
                    f"{self.family} was built with d_in=0 (no inputs) but got x of shape "
                    f"{tuple(x.shape)}; build it with d_in={x.shape[-1]}"
                )
            if x.shape[-1] != self.d_in:
                raise ValueError(
                    f"{self.family}: x has {x.shape[-1]} features (shape {tuple(x.shape)}) but the "
                    f"model was built with d_in={self.d_in}"
                )

    def forward(self, t: torch.Tensor, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """dh/dt = G(h, x) * (-h + F(h, x)) / tau, row-wise. `t` is unused (time enters through x)."""
        self._check(h, x)
        drive = self.F(h, x)
        if self.leak:
            drive = drive - h
        if self.G is not None:
            drive = self.G(h, x) * drive
        return drive / self._tau_divisor()

    def gates(self, t: torch.Tensor, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """G(h, x) (B, n); ones for an ungated model. Unit i relaxes on the timescale tau / G_i."""
        self._check(h, x)
        return self.G(h, x) if self.G is not None else torch.ones_like(h)

    def timescales(self, t: torch.Tensor, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """tau / G_i(h, x) (B, n): each unit's own time constant."""
        return self.tau / self.gates(t, h, x)

    def jacobian(self, t: torch.Tensor, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """d(dh/dt)/dh (B, n, n) in the structured form

            J = tau^-1 [ diag(G) (dF/dh - I) + diag(F - h) dG/dh ]

        (without the leak drop the I and the -h; without a gate G = 1 and dG/dh = 0). dF/dh and dG/dh come
        from the layer-wise chain rule (`FeedForward.forward_and_jacobian`), no autograd.
        """
        self._check(h, x)
        f, jac = self.F.forward_and_jacobian(h, x)
        resid = f
        if self.leak:
            jac = jac - torch.eye(self.n, dtype=h.dtype, device=h.device)
            resid = f - h
        if self.G is not None:
            g, jg = self.G.forward_and_jacobian(h, x)
            jac = g.unsqueeze(-1) * jac + resid.unsqueeze(-1) * jg
        return jac / self._tau_divisor()

    # ---- export -----------------------------------------------------------------------------------------

    def flat_entries(self) -> list[tuple[str, nn.Parameter]]:
        """F's layers, then G's, each as weight, input_weight (if any), bias; then log_tau (if learnable)."""
        entries = []
        for net_name, net in (("F", self.F), ("G", self.G)):
            if net is None:
                continue
            for i, layer in enumerate(net.layers):
                entries.append((f"{net_name}.layers.{i}.weight", layer.weight))
                if layer.input_weight is not None:
                    entries.append((f"{net_name}.layers.{i}.input_weight", layer.input_weight))
                entries.append((f"{net_name}.layers.{i}.bias", layer.bias))
        if self.log_tau is not None:
            entries.append(("log_tau", self.log_tau))
        return entries

    def spec(self) -> dict:
        """The architecture as plain data (JSON-serialisable); the format is documented in `gnode.models.spec`."""
        return {
            "format": "gnode.vector_field",
            "version": SPEC_VERSION,
            "family": self.family,
            "n": self.n,
            "d_in": self.d_in,
            "dtype": dtype_name(self.F.layers[0].weight.dtype),
            "tau": float(self.tau.detach()),
            "learn_tau": self.learn_tau,
            "leak": self.leak,
            "gate": self.gated,
            "F": self.F.architecture(),
            "G": self.G.architecture() if self.G is not None else None,
            "parameters": self.flat_layout(),
        }

    def extra_repr(self) -> str:
        return (
            f"n={self.n}, d_in={self.d_in}, "
            f"tau={float(self.tau.detach()):g}{' (learnable)' if self.learn_tau else ''}, "
            f"leak={self.leak}, gate={self.gated}"
        )


class NeuralODE(GatedNODE):
    """The ungated nODE  tau dh/dt = -h + F(h, x)  (G = 1); `leak=False` gives Chen et al.'s tau dh/dt = F(h, x).

    Equal to `GatedNODE(..., gate=False)` with the same weights. depth/width/phi_h/phi_a are F's.
    """

    def __init__(
        self,
        n: int,
        d_in: int = 0,
        *,
        depth: int = 1,
        width=None,
        phi_h: str = "tanh",
        phi_a: str = "relu",
        tau: float = 1.0,
        learn_tau: bool = False,
        leak: bool = True,
        init: str = "critical",
        gain: float | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        super().__init__(
            n,
            d_in,
            depth_F=depth,
            width_F=width,
            phi_h=phi_h,
            phi_a=phi_a,
            tau=tau,
            learn_tau=learn_tau,
            leak=leak,
            gate=False,
            init=init,
            gain=gain,
            generator=generator,
            dtype=dtype,
            device=device,
        )


class MinimalGRU(GatedNODE):
    """The minimal gated recurrent unit (mGRU, Ravanelli et al. 2018) in continuous time: L_h = L_z = 1,

        tau dh/dt = sigmoid(W_z h + U_z x + b_z) * (-h + phi_h(W_h h + U_h x + b_h)).

    Equal to `GatedNODE(..., depth_F=1, depth_G=1)` with the same weights.
    """

    def __init__(
        self,
        n: int,
        d_in: int = 0,
        *,
        phi_h: str = "tanh",
        tau: float = 1.0,
        learn_tau: bool = False,
        init: str = "critical",
        gain: float | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        super().__init__(
            n,
            d_in,
            depth_F=1,
            depth_G=1,
            phi_h=phi_h,
            tau=tau,
            learn_tau=learn_tau,
            init=init,
            gain=gain,
            generator=generator,
            dtype=dtype,
            device=device,
        )


class ElmanRNN(GatedNODE):
    """The classical (Elman / vanilla) continuous-time RNN: no gate, one layer.

    form="rate" (default):  tau dh/dt = -h + W phi(h) + U x + b   (phi in tanh, relu, identity)
        the rate network of the issue and the paper's footnote 3; equal to
        `GatedNODE(..., gate=False, depth_F=1, phi_h="identity", pre_activation=phi)`.
    form="classical":       tau dh/dt = -h + phi(W h + U x + b)   (phi in tanh, identity)
        the paper's L_h = 1 reduction of the gnODE; equal to `GatedNODE(..., gate=False, depth_F=1, phi_h=phi)`.

    W, U, b are `F.layers[0].weight`, `.input_weight`, `.bias`. With init="critical", W has variance 1/n:
    Sompolinsky, Crisanti & Sommers' g = 1.
    """

    def __init__(
        self,
        n: int,
        d_in: int = 0,
        *,
        phi: str = "tanh",
        form: str = "rate",
        tau: float = 1.0,
        learn_tau: bool = False,
        init: str = "critical",
        gain: float | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        _check_choice("form", form, ("rate", "classical"))
        if form == "rate":
            _check_choice("phi", phi, PRE_ACTIVATIONS)
            settings = {"phi_h": "identity", "pre_activation": phi}
        else:
            _check_choice("phi", phi, PHI_H)
            settings = {"phi_h": phi}
        super().__init__(
            n,
            d_in,
            depth_F=1,
            gate=False,
            tau=tau,
            learn_tau=learn_tau,
            init=init,
            gain=gain,
            generator=generator,
            dtype=dtype,
            device=device,
            **settings,
        )

    @property
    def form(self) -> str:
        # with phi = identity the two forms are the same vector field; call it "rate"
        return "classical" if self.F.layers[0].act.name != "identity" else "rate"

    @property
    def W(self) -> nn.Parameter:
        return self.F.layers[0].weight


VECTOR_FIELD_FAMILIES: dict[str, type[GatedNODE]] = {
    cls.__name__: cls for cls in (GatedNODE, NeuralODE, MinimalGRU, ElmanRNN)
}
