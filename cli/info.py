"""`raympl info`: the cluster's resources and where a run would be placed, or what a model masks and sends."""

from __future__ import annotations

from typing import Annotated

from rich.table import Table

from raympl import config as cfg
from raympl.cli.common import Opt, err, one_line_errors, out

# The modules that compute (torch, Ray, pandas) are imported inside each command, when it runs, so that
# `raympl --help` and a bad flag answer at once instead of after seconds of imports.



def info(
    address: Annotated[str | None, Opt(help="Ray cluster address; default starts a local one.")] = None,
    agents: Annotated[int, Opt(help="Agents of the run to place.")] = 20,
    agents_per_actor: Annotated[int | None, Opt()] = None,
    cpus_per_agent: Annotated[float | None, Opt()] = None,
    gpus_per_agent: Annotated[float, Opt()] = 0.0,
    model: Annotated[str | None, Opt(help="Instead of the cluster: this model's maskable weights per layer and "
                                          "bits per message (any --model of simulate).")] = None,
    input_shape: Annotated[str, Opt(help="With --model: C,H,W of an image (or D of a feature vector).")
                           ] = "1,28,28",
    classes: Annotated[int, Opt(help="With --model: number of classes.")] = 10,
    maskable: Annotated[str, Opt(help="With --model: which parameters are masked (conv+linear, conv, linear, "
                                      "re:REGEX).")] = "conv+linear",
) -> None:
    """Show the cluster's resources and the placement a run with these settings would get; or, with --model,
    what a model masks and sends."""
    with one_line_errors():
        if model is not None:
            show_model(model, input_shape, classes, maskable)
            return
        import ray

        from raympl.options import resolve
        from raympl.runtime.launch import connect_ray
        from raympl.runtime.placement import plan, ray_resources

        run_config = resolve({"agents": agents, "agents_per_actor": agents_per_actor,
                              "cpus_per_agent": cpus_per_agent, "gpus_per_agent": gpus_per_agent,
                              "address": address})

        connect_ray(address, err.print)
        table = Table(title="Ray nodes")
        for column in ("node", "alive", "CPU", "GPU", "memory GB", "object store GB"):
            table.add_column(column)
        for node in ray.nodes():
            res = node["Resources"]
            table.add_row(node["NodeManagerAddress"], str(node["Alive"]), f"{res.get('CPU', 0):g}",
                          f"{res.get('GPU', 0):g}", f"{res.get('memory', 0) / 1e9:.1f}",
                          f"{res.get('object_store_memory', 0) / 1e9:.1f}")
        out.print(table)
        placement = plan(run_config, ray_resources())
        out.print(f"placement for {agents} agents: {placement.describe()}", highlight=False)


def show_model(name: str, input_shape: str, classes: int, maskable: str) -> None:
    """Per maskable layer its shape and weights; then the free parameters and what one message costs."""
    try:
        shape = tuple(int(v) for v in input_shape.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise cfg.ConfigError(f"invalid input-shape {input_shape!r}: expected C,H,W (or D) such as 1,28,28")
    if classes < 2:
        raise cfg.ConfigError(f"invalid classes {classes}: need at least 2")
    from raympl import models
    from raympl.options import resolve

    config = resolve({"model": name, **({"maskable": maskable} if maskable != "conv+linear" else {})})
    net = models.for_run(config, shape, classes)
    names = getattr(net, "maskable", None) or [f"layer {i}" for i in range(len(net.layers))]
    table = Table(title=f"{name} on {input_shape} inputs, {classes} classes: maskable weights")
    for column in ("parameter", "kind", "shape", "weights"):
        table.add_column(column)
    for label, layer in zip(names, net.layers, strict=True):
        table.add_row(label, layer.kind, "x".join(map(str, layer.shape)), f"{layer.numel:,}")
    out.print(table)
    free = sum(b.numel() for b in net.biases.values())
    buffers = sum(b.numel() for b in net.buffers.values())
    out.print(f"maskable weights {net.num_maskable:,} in {len(net.layers)} tensors; free parameters (biases, "
              f"normalisation) {free:,}; per-agent buffers {buffers:,}", highlight=False)
    out.print(f"bits per message: a mask (mce-pl, raw codec) {net.num_maskable:,} bits = "
              f"{net.num_maskable / 8 / 2**20:.2f} MiB; a dense float32 model (dsgd) "
              f"{32 * (net.num_maskable + free):,} "
              f"bits = {4 * (net.num_maskable + free) / 2**20:.2f} MiB", highlight=False)
