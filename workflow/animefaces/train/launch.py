"""How the train rule starts training, and what it asks the scheduler for (no torch import: the Snakefile uses it).

- ``train.nodes: 1``, ``gpus`` 0 or 1: one process, ``python -m animefaces.train``.
- ``train.nodes: 1``, ``gpus > 1``: ``torchrun --standalone`` with one process per GPU on the job's node.
- ``train.nodes > 1`` (SLURM): one job spanning ``nodes`` nodes; inside it ``srun`` starts one ``torchrun`` per node
  (``--ntasks-per-node=1``), each spawning ``gpus`` processes (1 on a CPU job), and the torchruns find each other
  through a c10d rendezvous hosted by the job's first node (the batch host, where the rule's shell command runs).
  The job resources follow the SLURM plugin's MPI convention (``mpi``, ``tasks``, ``nodes``): its job step then runs
  the shell command once, on the batch host, instead of wrapping it in a one-task ``srun``, so the command's own
  ``srun`` places the per-node launchers. GPUs are requested per node with ``--gres=gpu:<gpus>`` (``--gpus`` would be
  the job's total, which SLURM may split unevenly across nodes).
"""

from __future__ import annotations

from typing import Any

RDZV_PORT_BASE = 29500  # + SLURM_JOB_ID % 1000: two jobs sharing a first node do not collide
TRAIN_MODULE = "animefaces.train"


def _check_nodes(nodes: int) -> int:
    nodes = int(nodes)
    if nodes < 1:
        raise ValueError(f"train.nodes must be >= 1, got {nodes}")
    return nodes


def torchrun_args(
    nnodes: int,
    nproc_per_node: int,
    rdzv_endpoint: str,
    rdzv_id: str,
    node_rank: int | None = None,
    torchrun: str = "torchrun",
) -> list[str]:
    """``torchrun`` argv (up to ``-m animefaces.train``) joining an ``nnodes``-node c10d rendezvous at ``host:port``.

    ``node_rank`` only names the launcher in logs: c10d assigns ranks in arrival order, which is why every process's
    RNG state and data share is keyed by its global rank, never by its node.
    """
    args = [
        torchrun,
        f"--nnodes={int(nnodes)}",
        f"--nproc_per_node={max(1, int(nproc_per_node))}",
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint={rdzv_endpoint}",
        f"--rdzv_id={rdzv_id}",
    ]
    if node_rank is not None:
        args.append(f"--node_rank={int(node_rank)}")
    return [*args, "-m", TRAIN_MODULE]


def srun_args(nodes: int, gpus: int, threads: int) -> list[str]:
    """The ``srun`` that starts one launcher per node of the job's allocation.

    Everything is spelled out: the plugin's job step strips the allocation's ``SLURM_*`` variables (all but the job
    id) from the command's environment, so nothing would be inherited.
    """
    args = [
        "srun",
        f"--nodes={nodes}",
        f"--ntasks={nodes}",
        "--ntasks-per-node=1",
        f"--cpus-per-task={max(1, int(threads))}",
        "--kill-on-bad-exit=1",
    ]
    if gpus > 0:
        args.append(f"--gres=gpu:{gpus}")
    return args


def launch_command(nodes: int, gpus: int, threads: int) -> str:
    """The shell words the train rule puts before ``--data ... --outdir ... --params ...``.

    ``gpus`` is per node (``animefaces.wiring.train_gpus``), ``threads`` the rule's threads (``--cpus-per-task`` of each
    per-node launcher). For ``nodes > 1`` the command must run inside a SLURM job (the ``slurm`` profile); the
    rendezvous host is the node it runs on, ``$(hostname)``, and the rendezvous id the job id.
    """
    nodes = _check_nodes(nodes)
    if nodes == 1:
        if gpus > 1:
            return f"torchrun --standalone --nproc_per_node={gpus} -m {TRAIN_MODULE}"
        return f"python -m {TRAIN_MODULE}"
    # expanded by the job's shell: the batch host (first node) hosts the rendezvous; a port and id per job
    job_id = "${SLURM_JOB_ID:?train.nodes > 1 runs only inside a SLURM job: use --profile workflow/profiles/slurm}"
    endpoint = f'"$(hostname)":$(({RDZV_PORT_BASE} + {job_id} % 1000))'
    run = torchrun_args(nodes, gpus, endpoint, "animefaces-$SLURM_JOB_ID")
    return " ".join(srun_args(nodes, gpus, threads) + run)


def job_resources(nodes: int, gpus: int) -> dict[str, Any]:
    """The train rule's scheduler resources besides ``mem_mb``/``runtime`` (per node, as SLURM reads them).

    One node: ``gpu=<gpus>`` (the SLURM plugin makes it ``--gpus``; the workstation profile counts it against
    ``resources: gpu``). Several nodes: ``nodes``, ``tasks`` (= nodes: one launcher per node, the plugin's
    ``--ntasks``), ``mpi`` (the plugin then runs the command without its own one-task ``srun``) and
    ``gres=gpu:<gpus>`` per node with ``tasks_per_gpu: 0`` (no ``--ntasks-per-gpu``: one task drives all the node's
    GPUs through torchrun).
    """
    nodes = _check_nodes(nodes)
    if nodes == 1:
        return {"gpu": gpus} if gpus > 0 else {}
    res: dict[str, Any] = {"nodes": nodes, "tasks": nodes, "mpi": "srun"}
    if gpus > 0:
        res.update(gres=f"gpu:{gpus}", tasks_per_gpu=0)
    return res
