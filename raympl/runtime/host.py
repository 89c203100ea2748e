"""AgentHost: one process serving several agents. The same class runs as a Ray actor or in-process.

Per phase the host returns ONE Arrow record batch with all its agents' messages (by value, so the
caller owns it), and receives the record batches that hold its agents' neighbours.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

from raympl import algorithms, models
from raympl.algorithms.base import ABSORBED, AgentContext, agent_seed
from raympl.algorithms.batched_masks import BatchedMasks
from raympl.config import RunConfig
from raympl.data.datasets import Dataset, normalize
from raympl.errors import DeviceError
from raympl.models import precision
from raympl.network.links import Links, Sent
from raympl.runtime import allocator, checkpoint, state_store
from raympl.runtime.gossip_host import GossipLinks
from raympl.wire import batch, bitmask

BATCH_SEED, EVAL_SEED = 11, 12
SERVER = -1  # the sender id of the simulated server's message
# test images per evaluation forward pass: large chunks keep a GPU busy; on a CPU, chunks of 128 keep
# each activation within the caches and below glibc's mmap threshold (32 MB), above which every
# element-wise result is a fresh mmap whose page faults cost more than the operation (AlexNet at 1024
# images: 1.4x slower per image, small CNN 3x)
EVAL_CHUNK = {"cpu": 128, "cuda": 1024}


NO_SAMPLES = np.empty(0, dtype=np.int64)


@dataclass
class AgentData:
    """What a host needs to know about one of its agents besides algorithm state."""

    agent: int
    train: np.ndarray
    test: np.ndarray
    neighbours: list[int]  # [SERVER] for server algorithms
    mixing: dict[int, float] = field(default_factory=dict)
    val: np.ndarray = field(default_factory=lambda: NO_SAMPLES)  # held-out training indices (--val-fraction)

    def context(self) -> AgentContext:
        return AgentContext(self.agent, self.neighbours, len(self.train), self.mixing)


def pick_device(requested: str, given_gpu: bool) -> torch.device:
    """The device a host computes on: never a silent CPU run when a GPU was asked for."""
    if requested == "cpu" or (requested == "auto" and not given_gpu):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = (f"CUDA is unusable here (torch {torch.__version__}, CUDA build {torch.version.cuda}, "
               f"CUDA_VISIBLE_DEVICES={visible!r})")
        raise DeviceError(f"invalid device {requested!r}: this host was asked to compute on a GPU but {why}; "
                          "use --device cpu and --gpus-per-agent 0 to run on CPUs")
    return torch.device("cuda")


def deterministic_cuda() -> None:
    """Settings that make a GPU run repeat exactly, so resume and host recovery stay bit-identical:
    cuBLAS with a fixed workspace, deterministic cuDNN kernels, no autotuning."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before the first cuBLAS call
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # warn_only: an op without a deterministic kernel warns instead of stopping the run; the cuda
    # tests check that replays are bit-identical
    torch.use_deterministic_algorithms(True, warn_only=True)


class AgentBatches:
    """LocalData of one agent: its training-set size and fresh seeded minibatches on demand."""

    def __init__(self, host: AgentHost, agent: int):
        self.host, self.agent = host, agent
        self.size = len(host.agents[agent].train)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.host._batch(self.agent)


def eval_subset(test: np.ndarray, n: int | None, seed: int, agent: int) -> np.ndarray:
    """A fixed seeded subset of n test indices (all of them when n is None or larger)."""
    if n is None or n >= len(test):
        return test
    rng = np.random.default_rng(agent_seed(seed, agent, EVAL_SEED))
    return np.sort(rng.choice(test, n, replace=False))


class AgentHost:
    def __init__(self, config: RunConfig, dataset: Dataset, agents: list[AgentData], threads: int,
                 given_gpu: bool = False):
        self.threads = threads
        torch.set_num_threads(threads)
        # U[-1,1] weights drive many gradients into the denormal range, where CPU convolution
        # backward runs ~3x slower; flushing them to zero is deterministic and costs no accuracy.
        torch.set_flush_denormal(True)
        allocator.keep_freed_memory()  # no page faults on every step's fresh activations
        self.device = pick_device(config.device, given_gpu)
        if self.device.type == "cuda":
            deterministic_cuda()
        precision.check_device(config.precision, self.device)
        precision.set_matmul_mode(config.precision)
        self.config, self.dataset = config, dataset
        model = models.for_run(config, dataset.input_shape, dataset.num_classes, device=str(self.device))
        self.model = model
        self.algorithm = algorithms.get(config.algorithm)(model, config, self.device)
        self.batched = BatchedMasks(self.algorithm) if config.engine == "batched" else None
        self.agents = {a.agent: a for a in agents}
        self.states = state_store.make(config.state_store, self.device)
        self.start_agents()
        self.eval_idx = {a.agent: eval_subset(a.test, config.eval_samples, config.seed, a.agent)
                         for a in agents}

    def start_agents(self) -> None:
        """Every agent's round-0 state, a function of the configuration alone (so no snapshot of it is kept)."""
        for agent, data in self.agents.items():
            self.states[agent] = self.algorithm.init_state(data.context())
        # an nn.Module model's buffers (batch-norm running statistics) are each agent's own
        self.norm_state = {a: {n: b.clone() for n, b in self.model.buffers.items()} for a in self.agents}
        self.batch_rng = {a: np.random.default_rng(agent_seed(self.config.seed, a, BATCH_SEED)) for a in self.agents}
        self.links = Links(self.config, getattr(self.algorithm, "mask_layers", None), self.algorithm.server,
                           resyncs=hasattr(self.algorithm, "full_message"))
        self.gossip = GossipLinks(self.config.codec, getattr(self.algorithm, "mask_layers", None))

    def device_name(self) -> str:
        return str(self.device)

    def peak_memory_mb(self) -> dict[str, float]:
        """Peak resident memory of this host's process and peak GPU memory allocated by torch (0 on CPU)."""
        gpu = torch.cuda.max_memory_allocated(self.device) / 2**20 if self.device.type == "cuda" else 0.0
        return {"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "gpu": gpu}

    def _batch(self, agent: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A fresh random minibatch (without replacement) from the agent's training set."""
        train = self.agents[agent].train
        idx = np.sort(self.batch_rng[agent].choice(train, min(self.config.batch_size, len(train)),
                                                   replace=False))
        return self._images(self.dataset.train_x[idx]), torch.from_numpy(self.dataset.train_y[idx]).to(self.device)

    def _images(self, raw: np.ndarray) -> torch.Tensor:
        """uint8 images -> floats in [-1, 1] on this host's device (copied as uint8); feature vectors as they
        are. Images channels-last on a CPU: its convolutions run 5-35 % faster here. Copied into fresh
        channels-last strides, never kept as they came: for one channel both layouts pass as contiguous, and
        the stride numpy gives the size-1 channel axis depends on where the array came from (a Ray object
        store copy differs from the loader's), which chose another convolution kernel, so the in-process and
        the Ray executor rounded differently."""
        x = normalize(torch.from_numpy(raw).to(self.device))
        if self.device.type != "cpu" or x.dim() != 4:
            return x
        return torch.empty(x.shape, dtype=x.dtype, memory_format=torch.channels_last).copy_(x)

    def _running(self, agent: int) -> None:
        """The model's forward passes use (and update) this agent's buffers from now on."""
        if self.model.buffers:
            self.model.agent_buffers = self.norm_state[agent]

    def local_phase(self, round_: int, plan: dict[int, tuple[list[int], list[int], int]] | None = None
                    ) -> tuple[pa.RecordBatch, dict[int, Sent]]:
        """Phase 1 for every hosted agent: (message batch, what each sending agent sent).
        plan (the simulated network on): online agent -> (receivers this round, receivers holding its last
        message, the round of that message); an agent not in it is offline, one with no receivers trains but
        sends nothing."""
        torch.set_num_threads(self.threads)
        agents = sorted(self.agents) if plan is None else sorted(a for a in self.agents if a in plan)
        messages, sent = [], {}
        for agent, raw in zip(agents, self._local_messages(round_, agents), strict=True):
            if raw is None:
                continue
            if plan is None:
                out, sent[agent] = self.links.send(round_, agent, self.agents[agent].neighbours, raw)
            elif plan[agent][0]:
                send_to, holders, reference = plan[agent]
                full = (self.algorithm.full_message(self.states[agent])
                        if self.links.resyncs and len(holders) < len(send_to) else None)
                out, sent[agent] = self.links.send(round_, agent, send_to, raw, holders, full, reference)
            else:
                continue
            messages.extend(out)
        return batch.encode(messages), sent

    def _local_messages(self, round_: int, agents: list[int]) -> list[np.ndarray | None]:
        if self.batched:
            states = [self.states[a] for a in agents]
            return self.batched.local(states, [self._batch(a) for a in agents], self.algorithm.communicates,
                                      self.norm_state)
        messages = []
        for agent in agents:
            state = self.states[agent]
            self._running(agent)
            messages.append(self.algorithm.local(state, AgentBatches(self, agent), round_))
            self.states[agent] = state  # written back: a disk store holds copies
        return messages

    def merge_phase(self, round_: int, plan: dict[int, tuple[list[int], dict[int, float]]] | None,
                    *payloads: pa.RecordBatch) -> float:
        """Phase 2: decode each needed sender once, then let every hosted agent merge. Returns the
        seconds spent decoding the wire format (mask codecs). plan (the simulated network on): online
        agent -> (the senders whose messages it uses this round, its mixing row over them and itself)."""
        torch.set_num_threads(self.threads)
        if not self.algorithm.communicates:
            return 0.0
        self.links.decoding_s = 0.0
        variants: dict[int, dict[int, np.ndarray]] = {}  # sender -> reference round -> payload
        for payload in payloads:
            for message in batch.messages(payload):
                variants.setdefault(message.agent, {})[message.reference] = message.payload
        raw: dict[tuple[int, int], np.ndarray] = {}
        senders = ({a: self.agents[a].neighbours for a in sorted(self.agents)} if plan is None
                   else {a: plan[a][0] for a in sorted(plan)})
        inboxes = {agent: [self.links.receive(round_, agent, j, variants, raw) for j in senders[agent]]
                   for agent in senders}
        if plan is not None:
            for agent, used in senders.items():
                self.links.forget_others(agent, used)
                self._set_context(agent, used, plan[agent][1])
        if self.batched:
            full = [a for a in inboxes if inboxes[a]]
            if full:
                self.batched.merge([self.states[a] for a in full], [inboxes[a] for a in full])
            for agent in (a for a in inboxes if not inboxes[a]):
                self.algorithm.merge(self.states[agent], [])
            return self.links.decoding_s
        decoded: dict[tuple[int, int], object] = {}  # (sender, round the message was sent) -> decoded
        for agent, inbox in inboxes.items():
            for key, message in inbox:
                if key not in decoded:
                    full = len(key) == 3  # the sender's full state (links.FULL), not an increment
                    decoded[key] = self.algorithm.decode_full(message) if full else self.algorithm.decode(message)
            state = self.states[agent]
            self._running(agent)
            self.algorithm.merge(state, [decoded[key] for key, _ in inbox])
            self.states[agent] = state
        return self.links.decoding_s

    def gossip_wave(self, steps: dict[int, int], receive: dict[int, list[tuple[int, int]]],
                    use: dict[int, tuple[list[int], dict[int, float], list[int]]], evaluate: dict[int, list[int]],
                    *payloads: pa.RecordBatch) -> tuple[pa.RecordBatch, dict[int, int], list[dict]]:
        """One wave of the asynchronous schedule (network/gossip.py) for the hosted agents in `steps` (agent ->
        its step k): local step k and its message, keyed (agent, k); then the messages that reached the agent
        (`receive`: (sender, step) in arrival order, found in `payloads`), decoded in order; then the merge with
        the newest message of each sender in `use` (agent -> (senders, mixing row over them and itself, the
        step of each one's newest message as the planner has it)).
        `evaluate`: agent -> the evaluations (indices) its model after this merge stands for.
        Returns the wave's message batch, each message's bytes, and the evaluation rows."""
        torch.set_num_threads(self.threads)
        out = []
        for agent in sorted(steps):
            state = self.states[agent]
            self._running(agent)
            raw = self.algorithm.local(state, AgentBatches(self, agent), steps[agent])
            self.states[agent] = state
            if self.algorithm.communicates:
                out.append(self.gossip.encode(agent, steps[agent], raw))
        if self.algorithm.communicates:
            found = {(m.agent, m.reference): m.payload for payload in payloads for m in batch.messages(payload)}
            raw_of: dict[tuple[int, int], np.ndarray] = {}
            decoded: dict[tuple[int, int], object] = {}
            absorbs = hasattr(self.algorithm, "absorb")
            for agent in sorted(steps):
                state = self.states[agent]
                for sender, step in receive.get(agent, []):
                    self.gossip.receive(agent, sender, step, found[(sender, step)], raw_of)
                    if absorbs:  # every message, in the order sent (algorithms/base.py)
                        self.algorithm.absorb(state, sender, self._decoded(decoded, (sender, step), raw_of))
                senders, mixing, expected = use[agent]
                held = self.gossip.held.get(agent, {})
                self.gossip.check_held(agent, dict(zip(senders, expected, strict=True)))
                self._set_context(agent, senders, mixing, state)
                self._running(agent)
                self.algorithm.merge(state, [ABSORBED if absorbs else
                                             self._decoded(decoded, (s, held[s][0]), {(s, held[s][0]): held[s][1]})
                                             for s in senders])
                self.states[agent] = state
        rows = self.evaluate_agents({a: (steps[a], marks) for a, marks in evaluate.items()})
        return batch.encode(out), {m.agent: m.payload.size for m in out}, rows

    @torch.no_grad()
    def evaluate_agents(self, marks: dict[int, tuple[int, list[int]]], full: bool = False) -> list[dict]:
        """The asynchronous schedule's evaluations: agent -> (its steps made, the evaluation indices its current
        model stands for); one row per agent and index, on the fixed evaluation subset (full: the agent's whole
        test set, for the run's final evaluation)."""
        torch.set_num_threads(self.threads)
        self.model.train(False)
        try:
            rows = []
            for agent in sorted(marks):
                step, indices = marks[agent]
                row = self._evaluate_agent(0, agent, full=full)
                rows.extend({**row, "round": index, "step": step} for index in indices)
            return rows
        finally:
            self.model.train(True)

    def _decoded(self, cache: dict[tuple[int, int], object], key: tuple[int, int],
                 raw_of: dict[tuple[int, int], np.ndarray]) -> object:
        """The algorithm's decoding of the raw message `key` (sender, step), once per host."""
        if key not in cache:
            cache[key] = self.algorithm.decode(raw_of[key])
        return cache[key]

    def _set_context(self, agent: int, neighbours: list[int], mixing: dict[int, float], state=None) -> None:
        """This round's neighbours and mixing row, for algorithms whose state holds its context (`state`: the
        agent's state in hand, else the stored one)."""
        stored = state is None
        state = self.states[agent] if stored else state
        if hasattr(state, "context"):
            state.context = AgentContext(agent, neighbours, len(self.agents[agent].train), mixing)
            if stored:
                self.states[agent] = state

    @torch.no_grad()
    def evaluate(self, round_: int, full: bool) -> list[dict]:
        """Accuracy/loss of each personalized model on its test set (or its fixed eval subset)."""
        torch.set_num_threads(self.threads)
        self.model.train(False)
        try:
            return [self._evaluate_agent(round_, agent, full) for agent in sorted(self.agents)]
        finally:
            self.model.train(True)

    def _evaluate_agent(self, round_: int, agent: int, full: bool) -> dict:
        idx = self.agents[agent].test if full else self.eval_idx[agent]
        state = self.states[agent]
        self._running(agent)
        weights, biases = self.algorithm.eval_params(state)
        accuracy, loss = self._score(self.dataset.test_x, self.dataset.test_y, idx, weights, biases)
        row = {"round": round_, "agent": agent, "accuracy": accuracy, "loss": loss, "samples": len(idx),
               **self.algorithm.stats(state)}
        val = self.agents[agent].val
        if len(val):  # the held-out part of the agent's own training data (--val-fraction)
            row["val_accuracy"], row["val_loss"] = self._score(self.dataset.train_x, self.dataset.train_y, val,
                                                               weights, biases)
        return row

    def _score(self, images: np.ndarray, labels: np.ndarray, idx: np.ndarray, weights, biases
               ) -> tuple[float, float]:
        """Accuracy and mean cross-entropy of the current model on images[idx], in chunks."""
        correct, loss_sum = 0, 0.0
        step = EVAL_CHUNK[self.device.type]
        for start in range(0, len(idx), step):
            chunk = idx[start:start + step]
            x = self._images(images[chunk])
            y = torch.from_numpy(labels[chunk]).to(self.device)
            logits = self.model.forward(x, weights, biases)
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
        return correct / len(idx), loss_sum / len(idx)

    def snapshot(self) -> dict[int, bytes]:
        """Every hosted agent's full state (algorithm state and minibatch generator), one blob each."""
        return {a: checkpoint.to_bytes({"state": self.states[a], "batch_rng": self.batch_rng[a],
                                        "last_received": self.links.last_received.get(a, {}),
                                        "last_sent": self.links.last_sent.get(a),
                                        "norm_state": self.norm_state[a], "gossip": self.gossip.state(a)})
                for a in sorted(self.agents)}

    def restore(self, blobs: dict[int, bytes] | None) -> None:
        """Load on the CPU (generators must stay there), then move the tensors to this host's device.
        None: back to round 0."""
        if blobs is None:
            self.start_agents()
            return
        for agent in self.agents:
            saved = checkpoint.from_bytes(blobs[agent])
            self.states[agent] = checkpoint.to_device(saved["state"], self.device)
            self.batch_rng[agent] = saved["batch_rng"]
            self.norm_state[agent] = checkpoint.to_device(saved.get("norm_state", {}), self.device)
            self.links.last_received[agent] = saved["last_received"]
            self.gossip.restore(agent, saved.get("gossip"))
            self.links.last_sent.pop(agent, None)
            if saved.get("last_sent") is not None:
                self.links.last_sent[agent] = saved["last_sent"]

    def masks(self) -> dict[int, np.ndarray]:
        """The agents' current personal masks (if the algorithm has them), bit-packed (wire.bitmask)."""
        packed = {}
        for agent in sorted(self.agents):  # one state at a time (a disk store loads each on access)
            mask = self.algorithm.personal_mask(self.states[agent])
            if mask is not None:
                packed[agent] = bitmask.pack_mask([m.to("cpu", torch.uint8).numpy() for m in mask])
        return packed
