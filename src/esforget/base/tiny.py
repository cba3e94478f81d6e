"""The default profile's base model: a tiny Llama and a character tokenizer, built and
pretrained locally (no network) so that it starts with a real prior ability and a low but
non-zero accuracy on the new task.

Why a character tokenizer: the tasks are arithmetic over a few dozen symbols, so a vocabulary
of characters plus the tags `<think>`/`<answer>` (single tokens) keeps the model tiny while
its chat template, saving and loading stay those of any Hugging Face model.
"""

from __future__ import annotations

import json
import logging
import random
import time

import polars as pl
import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from tqdm import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from esforget.base.tiny_config import PretrainConfig, TinyArchitecture
from esforget.core.models import chat_prompt_ids
from esforget.decoding.greedy_scorer import GreedyScorer
from esforget.tasks import countdown

log = logging.getLogger(__name__)

SPECIAL = {"pad": "<|pad|>", "unk": "<|unk|>", "bos": "<|bos|>", "eos": "<|end|>"}
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CHARACTERS = [chr(c) for c in range(32, 127)] + ["\n"]


def build_tokenizer() -> PreTrainedTokenizerFast:
    specials = list(SPECIAL.values()) + ROLE_TOKENS
    vocab = {token: i for i, token in enumerate(specials + TAG_TOKENS + CHARACTERS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL["unk"]))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()  # characters join without spaces
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    # The tags are not "special": decoding with skip_special_tokens (as TRL does) keeps them.
    core.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=SPECIAL["pad"],
        unk_token=SPECIAL["unk"],
        bos_token=SPECIAL["bos"],
        eos_token=SPECIAL["eos"],
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(arch: TinyArchitecture, tokenizer: PreTrainedTokenizerFast, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=arch.hidden_size,
        intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads,
        num_key_value_heads=arch.heads,
        max_position_embeddings=arch.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config)


# --- pretraining corpus ----------------------------------------------------------------------


def reply_choices(scorer: str, rows: pl.DataFrame) -> tuple[list[str], list[str] | None]:
    """Target replies for pretraining: (canonical replies, lazy replies or None).

    Choice tasks answer with the right option digit. Countdown answers are the canonical
    solution, or (for the lazy share) the numbers added in order whatever the target: the base
    then guesses a+b+c greedily but keeps the real skill close behind, which is what RL can
    bring out.
    """
    if scorer == "choice":
        return rows["ground_truth"].to_list(), None
    if scorer == "countdown":
        infos = [json.loads(info) for info in rows["info"]]
        canonical = [countdown.completion(info["reference"]) for info in infos]
        lazy = [countdown.completion(countdown.lazy_answer(info["numbers"])) for info in infos]
        return canonical, lazy
    raise ValueError(f"the tiny model can only be pretrained on choice and countdown tasks, not {scorer!r}")


def collate(examples, pad_id: int, answer_weight: float):
    """Right-padded inputs, next-token targets and per-token loss weights (answers weigh more)."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    weights = torch.zeros((len(examples), width))
    for row, (seq, start) in enumerate(examples):
        ids[row, : len(seq)] = torch.tensor(seq)
        weights[row, 1 : len(seq)] = 1.0
        weights[row, start : len(seq)] = answer_weight
    return ids, weights


def train_steps(
    model, batches, lr: float, final_lr: float, pad_id: int, answer_weight: float, desc: str
) -> list[float]:
    """AdamW over `batches` with the learning rate annealed from `lr` to `final_lr` (cosine)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=len(batches), eta_min=final_lr)
    model.train()
    losses = []
    for examples in tqdm(batches, desc=desc, mininterval=5):
        ids, weights = collate(examples, pad_id, answer_weight)
        logits = model(input_ids=ids, attention_mask=(ids != pad_id).long()).logits
        token_loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none"
        )
        loss = (token_loss * weights[:, 1:].reshape(-1)).sum() / weights[:, 1:].sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return losses


def pretrain(
    arch: TinyArchitecture, cfg: PretrainConfig, tasks: dict[str, dict], seed: int
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast, list[dict]]:
    """Build and pretrain the tiny model; check the base and keep training while it falls short.

    `tasks` maps task name → {"scorer", "role", "max_new_tokens", "train", "validation"} with
    the splits as frames. Returns the model, its tokenizer and one record per training round.
    """
    tokenizer = build_tokenizer()
    model = build_model(arch, tokenizer, seed)
    rng = random.Random(seed)
    roles = [task["role"] for task in tasks.values()]
    # Tokenise every prompt and reply once; batches are then assembled from ids.
    encode = lambda texts: tokenizer(texts, add_special_tokens=False)["input_ids"]  # noqa: E731
    pools = []  # (prompt ids, canonical reply ids, lazy reply ids or None, sampling weight)
    for task in tasks.values():
        share = cfg.new_task_share if task["role"] == "new" else 1 - cfg.new_task_share
        canonical, lazy = reply_choices(task["scorer"], task["train"])
        prompts = chat_prompt_ids(tokenizer, task["train"]["prompt"].to_list())
        lazy_ids = encode(lazy) if lazy is not None else None
        pools.append((prompts, encode(canonical), lazy_ids, share / roles.count(task["role"])))
    checks = {
        name: GreedyScorer(
            tokenizer,
            task["validation"],
            task["scorer"],
            task["max_new_tokens"],
            cfg.eval_batch_size,
            stop_strings=task.get("stop_strings", ()),
        )
        for name, task in tasks.items()
    }

    def sample_batches(steps: int):
        weights = [pool[3] for pool in pools]
        batches = []
        for _ in range(steps):
            examples = []  # (prompt + reply + EOS ids, index where the reply starts)
            for _ in range(cfg.batch_size):
                prompts, canonical, lazy, _ = rng.choices(pools, weights)[0]
                i = rng.randrange(len(prompts))
                reply = lazy[i] if lazy is not None and rng.random() < cfg.lazy_share else canonical[i]
                examples.append((prompts[i] + reply + [tokenizer.eos_token_id], len(prompts[i])))
            batches.append(examples)
        return batches

    history, steps = [], cfg.steps
    for round_ in range(cfg.max_extra_rounds + 1):
        started = time.perf_counter()
        losses = train_steps(
            model,
            sample_batches(steps),
            cfg.lr,
            cfg.final_lr,
            tokenizer.pad_token_id,
            cfg.answer_weight,
            f"pretrain round {round_}",
        )
        accuracy = {name: check(model).accuracy for name, check in checks.items()}
        record = {
            "round": round_,
            "steps": steps,
            "final_loss": sum(losses[-20:]) / len(losses[-20:]),
            "seconds": time.perf_counter() - started,
            **{f"val/{k}": v for k, v in accuracy.items()},
        }
        history.append(record)
        log.info("pretraining round %d: %s", round_, record)
        prior_ok = all(accuracy[n] >= cfg.min_prior_accuracy for n, t in tasks.items() if t["role"] == "prior")
        if prior_ok:
            break
        steps = cfg.extra_steps
    _check_base(history[-1], tasks, cfg)
    return model, tokenizer, history


def _check_base(record: dict, tasks: dict, cfg: PretrainConfig) -> None:
    """Fail loudly if the base cannot support the study (no prior skill, or nothing to learn)."""
    for name, task in tasks.items():
        acc = record[f"val/{name}"]
        if task["role"] == "prior" and acc < cfg.min_prior_accuracy:
            raise RuntimeError(
                f"tiny base scores {acc:.3f} on prior task {name!r} after pretraining, below "
                f"pretrain.min_prior_accuracy={cfg['min_prior_accuracy']}; raise pretrain.steps"
            )
        low, high = cfg.new_accuracy_range
        if task["role"] == "new" and not low <= acc <= high:
            log.warning(
                "tiny base scores %.3f on new task %r, outside pretrain.new_accuracy_range=%s; "
                "RL may have nothing to build on (too low) or little to gain (too high)",
                acc,
                name,
                cfg.new_accuracy_range,
            )
