/** The exact comparison points of two tokenizations, on hand-built cases whose answers are read off the text. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alignSpans, sortedL1, tokenBoundaries } from '../../src/core/spanAlignment';

// each token i's log-probability is −(i + 1) for the teacher and −10·(i + 1) for the student,
// so a span's sum names the tokens it holds
const logp = (n: number, scale: number) =>
  Float64Array.from({ length: n }, (_, i) => (i === 0 ? NaN : -scale * (i + 1)));

test('spans run between the places where both tokenizations start a token; a model’s first token (no prediction) starts none', () => {
  const text = 'ab cd ef';
  // teacher: "ab", " cd", " ef"; student: "a", "b", " c", "d", " ef"
  const teacher: [number, number][] = [
    [0, 2],
    [2, 5],
    [5, 8],
  ];
  const student: [number, number][] = [
    [0, 1],
    [1, 2],
    [2, 4],
    [4, 5],
    [5, 8],
  ];
  const spans = alignSpans(text, { spans: teacher, logp: logp(3, 1) }, { spans: student, logp: logp(5, 10) });
  // common starts 0, 2, 5 and the end 8; [0, 2) holds the teacher's token 0, which has no prediction
  assert.deepEqual(
    spans.map((s) => [
      s.start,
      s.end,
      s.text,
      s.teacherLogp,
      s.studentLogp,
      s.teacherTokens,
      s.studentTokens,
    ]),
    [
      [2, 5, ' cd', -2, -30 - 40, 1, 2],
      [5, 8, ' ef', -3, -50, 1, 1],
    ],
  );
  const s = spans[0];
  assert.equal(s.logRatio, -2 + 70);
  assert.equal(s.k1, -s.logRatio);
  assert.ok(Math.abs(s.k3 - (Math.exp(68) - 1 - 68)) / Math.exp(68) < 1e-12);
});

test('a BOS token (no text) lets the first text token be predicted; split characters and merged whitespace start no span', () => {
  // both add a BOS: the first span starts at 0
  const text = 'é  x';
  const teacher: [number, number][] = [
    [0, 0],
    [0, 1],
    [1, 3],
    [3, 4],
  ]; // BOS, "é", "  ", "x"
  // student: BOS, two byte-fallback pieces of "é" (one character: one span), " ", " x"
  const student: [number, number][] = [
    [0, 0],
    [0, 1],
    [0, 1],
    [1, 2],
    [2, 4],
  ];
  assert.deepEqual(
    [...tokenBoundaries(student)],
    [
      [0, 1],
      [1, 3],
      [2, 4],
      [4, 5],
    ],
  );
  const spans = alignSpans(text, { spans: teacher, logp: logp(4, 1) }, { spans: student, logp: logp(5, 10) });
  // common: 0, 1 and the end; 3 is the teacher's alone and 2 the student's alone: " " + " x" against "  " + "x"
  assert.deepEqual(
    spans.map((s) => [s.text, s.teacherLogp, s.studentLogp]),
    [
      ['é', -2, -20 - 30],
      ['  x', -3 - 4, -40 - 50],
    ],
  );
});

test('an EOS a tokenizer appends (no text) is in no span: the last span holds the text’s tokens only', () => {
  const text = 'ab';
  // teacher: BOS, "ab", EOS; student: BOS, "a", "b"
  const spans = alignSpans(
    text,
    {
      spans: [
        [0, 0],
        [0, 2],
        [2, 2],
      ],
      logp: logp(3, 1),
    },
    {
      spans: [
        [0, 0],
        [0, 1],
        [1, 2],
      ],
      logp: logp(3, 10),
    },
  );
  assert.deepEqual(
    spans.map((s) => [s.text, s.teacherLogp, s.studentLogp, s.teacherTokens]),
    [['ab', -2, -20 - 30, 1]],
  );
});

test('tokenizations that never meet again compare one span to the end, or none', () => {
  const text = 'aaaa';
  const spans = alignSpans(
    text,
    {
      spans: [
        [0, 0],
        [0, 3],
        [3, 4],
      ],
      logp: logp(3, 1),
    },
    {
      spans: [
        [0, 0],
        [0, 2],
        [2, 4],
      ],
      logp: logp(3, 10),
    },
  );
  assert.deepEqual(
    spans.map((s) => [s.start, s.end]),
    [[0, 4]],
  );
  assert.deepEqual(
    alignSpans(
      'ab',
      { spans: [[0, 2]], logp: logp(1, 1) },
      {
        spans: [
          [0, 1],
          [1, 2],
        ],
        logp: logp(2, 1),
      },
    ),
    [],
  );
});

test('ULD between merged rows: both sorted descending, the shorter zero-padded, L1', () => {
  // sorted: [0.5, 0.3, 0.2] against [0.6, 0.1, 0]: 0.1 + 0.2 + 0.2
  assert.ok(Math.abs(sortedL1(Float64Array.of(0.5, 0.2, 0.3), Float64Array.of(0.1, 0.6)) - 0.5) < 1e-15);
  assert.equal(
    sortedL1(Float64Array.of(0.7, 0.3), Float64Array.of(0.3, 0.7)),
    0,
    'a permutation costs nothing',
  );
});
