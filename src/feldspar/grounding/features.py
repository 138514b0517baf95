"""What the groundedness model sees: word-overlap and embedding features of a claim against
a context, the same for training (bench/train_grounding.py) and for checking.

A claim is one or more sentences. Each sentence gets a vector of `SENTENCE_FEATURES`
against the context; a claim's features are the weakest value of each over its sentences,
and the number of sentences, so that a one-sentence claim and a whole response are scored
by the same model.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from feldspar.grounding.sentences import MARKER, split_sentences

# English and French words that carry no checkable fact on their own.
_STOPWORDS = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just let like me more most much my myself no nor not now
    of off on once only or other our ours ourselves out over own really same she should so
    some such than that the their theirs them themselves then there these they this those
    through to too under until up upon very was we were what when where which while who
    whom why will with would yes you your yours yourself yourselves one ones thing things
    well oh ok okay sure yeah hi hello hey thanks thank please great good nice cool glad
    know think believe guess mean lot lots pretty actually probably maybe may might must
    shall get got go going gone make made say said tell told see seen way kind sort also
    still even ever yet quite rather something anything everything nothing someone anyone
    le la les l un une des du de d et ou où mais donc or ni car ce cet cette ces c ça cela
    je j tu il elle on nous vous ils elles me m te t se s moi toi lui leur leurs eux mon ma
    mes ton ta tes son sa ses notre nos votre vos qui que qu quoi dont en y à au aux dans
    par pour sur sous avec sans chez vers entre est sont été être avoir a ai as avons avez
    ont était étaient sera fait faire plus moins très bien aussi alors comme si ne pas
    oui non merci bonjour voici voilà tout tous toute toutes autre autres même
"""
STOPWORDS = frozenset(_STOPWORDS.split())
_NEGATIONS = ("not no never none nor cannot without neither ne pas jamais aucun aucune sans "
              "ni rien personne")
NEGATIONS = frozenset(_NEGATIONS.split())
_PERSONAL = ("i me my mine myself we us our ours you your yours je moi mon ma mes nous notre "
             "nos vous votre vos tu toi ton ta tes")
PERSONAL = frozenset(_PERSONAL.split())

SENTENCE_FEATURES = (
    "coverage",          # share of the sentence's content words found in the context
    "coverage_window",   # ... in the best window of 3 consecutive context sentences
    "coverage_sentence",  # ... in the best single context sentence
    "coverage_two",      # ... in the best two context sentences (greedy), anywhere
    "clause_coverage",   # the lowest coverage of one of its clauses (cut at , ; and ...)
    "numbers",           # share of its numbers found in the context (1 if it has none)
    "has_numbers",
    "names",             # share of its capitalised words found in the context
    "has_names",
    "bigrams",           # share of its word bigrams found in the context
    "trigrams",
    "fourgrams",
    "novel",             # log(1 + content words not in the context)
    "length",            # log(1 + content words)
    "personal",          # log(1 + first/second person pronouns): opinions, chat
    "question",
    "negation_mismatch",  # negated while its best window is not, or the other way
    "cosine",            # highest cosine with one context sentence
    "cosine_top3",       # mean of the 3 highest
    "cosine_window",     # highest cosine with 2 adjacent context sentences (mean vector)
    "cosine_passage",    # highest cosine with a passage's mean vector
    "context_length",    # log(1 + words of context)
)
# Features where more means less support: a claim takes the highest of its sentences'
# (with the lowest of the others), so that it looks as weak as its weakest parts.
_RISKS = frozenset({"has_numbers", "has_names", "novel", "length", "personal", "question",
                    "negation_mismatch"})
FEATURES = (*(f"worst_{name}" for name in SENTENCE_FEATURES), "sentences")

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|\w+(?:['’]\w+)*")
_MARKER = re.compile(MARKER)
_SUFFIXES = ("ements", "ement", "ations", "ation", "ing", "ies", "ed", "es", "ly", "s", "x",
             "e")
_WINDOW = 3
_CLAUSE = re.compile(r"[,;:()]|\s(?:and|but|which|while|whereas|who|although|et|mais|qui|"
                     r"dont|tandis|alors)\s", re.IGNORECASE)


def stem(word: str) -> str:
    """A crude, language-agnostic stem: lower case, a common suffix off, 7 letters at most.

    Example:
        >>> [stem(w) for w in ("Shifted", "shifts", "coloured", "informations")]
        ['shift', 'shift', 'colour', 'inform']
    """
    word = word.lower().replace("’", "'")
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:7]


def _number(token: str) -> str:
    """'1,000' and '1000' are one number; '3,5' (French) and '3.5' another."""
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+", token):
        return token.replace(",", "")
    return token.replace(",", ".")


@dataclass(frozen=True)
class Analysis:
    """The words of one sentence, as the features need them."""

    words: int
    stems: frozenset[str]
    """Stems of its content words (stopwords and numbers left out)."""
    all_stems: frozenset[str]
    numbers: frozenset[str]
    names: frozenset[str]
    """Stems of words capitalised somewhere other than at the start."""
    ngrams: tuple[frozenset[tuple[str, ...]], ...]
    """Its word 2-, 3- and 4-grams (stems)."""
    negated: bool
    personal: int
    question: bool
    clauses: tuple[frozenset[str], ...] = ()
    """The content stems of each clause that has some."""

    @property
    def checkable(self) -> bool:
        """Whether it states anything that a context could support (a content word or a
        number); 'Sure!', 'Thanks.' and a bare citation marker do not."""
        return bool(self.stems or self.numbers)


def unmarked(text: str) -> str:
    """`text` without its citation markers ('It rains [2].' -> 'It rains.')."""
    return re.sub(r"\s+([.,;:!?])", r"\1", _MARKER.sub(" ", text)).strip()


def analyse(text: str) -> Analysis:
    """The words of `text`, citation markers left out.

    Example:
        >>> a = analyse("In 2019 Paris had 2,100,000 people [1].")
        >>> sorted(a.stems), sorted(a.numbers), sorted(a.names), a.checkable
        (['pari', 'peopl'], ['2019', '2100000'], ['pari'], True)
        >>> analyse("Sure, thanks! [2]").checkable
        False
    """
    clean = _MARKER.sub(" ", text)
    tokens = _TOKEN.findall(clean)
    stems = [stem(t) for t in tokens]
    lowered = [t.lower().replace("’", "'") for t in tokens]
    content = _content(tokens)
    clauses = tuple(c for c in (_content(_TOKEN.findall(part))
                                for part in _CLAUSE.split(clean)) if c)
    names = frozenset(
        s for i, (s, t) in enumerate(zip(stems, tokens, strict=True))
        if t[0].isupper() and (i > 0 or t.isupper()) and t.lower() not in STOPWORDS)
    ngrams = tuple(frozenset(tuple(stems[i : i + n]) for i in range(len(stems) - n + 1))
                   for n in (2, 3, 4))
    negated = any(w in NEGATIONS or w.endswith("n't") or w.startswith("n'") for w in lowered)
    personal = sum(w in PERSONAL or w.split("'")[0] in ("i", "j", "we", "you")
                   for w in lowered)
    return Analysis(words=len(tokens), stems=content, all_stems=frozenset(stems),
                    numbers=frozenset(_number(t) for t in tokens if t[0].isdigit()),
                    names=names, ngrams=ngrams, negated=negated, personal=personal,
                    question=clean.rstrip().endswith("?"), clauses=clauses)


def _content(tokens: Sequence[str]) -> frozenset[str]:
    """Stems of the content words among `tokens`."""
    found = set()
    for token in tokens:
        word = token.lower().replace("’", "'")
        if (not word[0].isdigit() and len(word) > 1 and word not in STOPWORDS
                and word.split("'")[0] not in STOPWORDS):
            found.add(stem(word))
    return frozenset(found)


@dataclass
class Context:
    """Passages cut into sentences, analysed once; vectors are filled in by the caller for
    the sentences it chose to embed (`vectors[i]` is None for the others)."""

    passages: list[list[str]]
    """Each passage's sentences."""
    analyses: list[list[Analysis]]
    vectors: list[list[np.ndarray | None]] = field(default_factory=list)

    @classmethod
    def build(cls, passages: Sequence[str]) -> Context:
        split = [[p[a:b] for a, b in split_sentences(p)] or ([p.strip()] if p.strip() else [])
                 for p in passages]
        context = cls(split, [[analyse(s) for s in sents] for sents in split])
        context.vectors = [[None] * len(sents) for sents in split]
        return context

    def candidates(self, claims: Sequence[Analysis], per_passage: int) -> list[tuple[int, int]]:
        """The (passage, sentence) pairs worth embedding: in each passage, the sentences
        that share the most content words with any claim sentence."""
        chosen: list[tuple[int, int]] = []
        for p, analyses in enumerate(self.analyses):
            ranked = sorted(range(len(analyses)), key=lambda i: (-max(
                (len(c.stems & analyses[i].stems) + len(c.numbers & analyses[i].numbers)
                 for c in claims), default=0), i))
            chosen.extend((p, i) for i in sorted(ranked[:per_passage]))
        return chosen


@dataclass
class _View:
    """The union of some passages' words, cached per subset of passages."""

    all_stems: frozenset[str]
    numbers: frozenset[str]
    ngrams: tuple[frozenset[tuple[str, ...]], ...]
    windows: list[tuple[frozenset[str], bool]]
    sentences: list[frozenset[str]]
    vectors: np.ndarray
    """Unit vectors of the embedded sentences, (n, dim)."""
    window_vectors: np.ndarray
    passage_vectors: np.ndarray
    words: int


def view(context: Context, passages: Sequence[int], dim: int) -> _View:
    """What the features need from the passages numbered `passages`, merged."""
    all_stems: set[str] = set()
    numbers: set[str] = set()
    ngrams: list[set[tuple[str, ...]]] = [set(), set(), set()]
    windows: list[tuple[frozenset[str], bool]] = []
    sentences: list[frozenset[str]] = []
    vectors: list[np.ndarray] = []
    window_vectors: list[np.ndarray] = []
    passage_vectors: list[np.ndarray] = []
    words = 0
    for p in passages:
        analyses = context.analyses[p]
        for a in analyses:
            all_stems |= a.all_stems
            numbers |= a.numbers
            for n, grams in enumerate(a.ngrams):
                ngrams[n] |= grams
            sentences.append(a.stems)
            words += a.words
        for i in range(max(1, len(analyses) - _WINDOW + 1)):
            part = analyses[i : i + _WINDOW]
            windows.append((frozenset().union(*(a.stems for a in part)),
                            any(a.negated for a in part)))
        row = context.vectors[p]
        embedded = [v for v in row if v is not None]
        vectors.extend(embedded)
        for left, right in itertools.pairwise(row):
            if left is not None and right is not None:
                window_vectors.append(_unit(left + right))
        if embedded:
            passage_vectors.append(_unit(np.sum(embedded, axis=0)))

    def stack(rows: list[np.ndarray]) -> np.ndarray:
        return np.vstack(rows) if rows else np.zeros((0, dim), dtype=np.float32)

    return _View(frozenset(all_stems), frozenset(numbers),
                 tuple(frozenset(g) for g in ngrams), windows, sentences, stack(vectors),
                 stack(window_vectors), stack(passage_vectors), words)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _share(part: frozenset[str] | frozenset[tuple[str, ...]],
           whole: frozenset[str] | frozenset[tuple[str, ...]]) -> float:
    return len(part & whole) / len(part) if part else 1.0


def sentence_features(claim: Analysis, vector: np.ndarray, ctx: _View) -> list[float]:
    """The `SENTENCE_FEATURES` of one claim sentence against a view of the context."""
    stems = claim.stems
    best_window, window_negated = 0.0, False
    for window, negated in ctx.windows:
        share = _share(stems, window)
        if share > best_window:
            best_window, window_negated = share, negated
    best = max(ctx.sentences, key=lambda s: len(stems & s), default=frozenset())
    second = max(ctx.sentences, key=lambda s: len(stems & (best | s)), default=frozenset())
    cosines = ctx.vectors @ vector if len(ctx.vectors) else np.zeros(1, dtype=np.float32)
    top = np.sort(cosines)[::-1][:3]
    window_cos = ctx.window_vectors @ vector if len(ctx.window_vectors) else cosines
    passage_cos = ctx.passage_vectors @ vector if len(ctx.passage_vectors) else cosines
    return [
        _share(stems, ctx.all_stems),
        best_window,
        max((_share(stems, s) for s in ctx.sentences), default=0.0),
        _share(stems, best | second),
        min((_share(c, ctx.all_stems) for c in claim.clauses), default=1.0),
        _share(claim.numbers, ctx.numbers),
        float(bool(claim.numbers)),
        _share(claim.names, ctx.all_stems),
        float(bool(claim.names)),
        *(_share(mine, theirs) for mine, theirs in zip(claim.ngrams, ctx.ngrams, strict=True)),
        math.log1p(len(stems - ctx.all_stems)),
        math.log1p(len(stems)),
        math.log1p(claim.personal),
        float(claim.question),
        float(claim.negated != window_negated),
        float(top[0]),
        float(top.mean()),
        float(max(window_cos.max(), top[0])),
        float(passage_cos.max()),
        math.log1p(ctx.words),
    ]


def claim_features(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """A claim's `FEATURES` from the `sentence_features` of its sentences: for each, the
    weakest value over the sentences, and log(number of sentences)."""
    matrix = np.asarray(rows, dtype=np.float64)
    worst = np.where(_RISK_MASK, matrix.max(axis=0), matrix.min(axis=0))
    return np.concatenate([worst, [math.log(len(rows))]])


_RISK_MASK = np.array([name in _RISKS for name in SENTENCE_FEATURES])
