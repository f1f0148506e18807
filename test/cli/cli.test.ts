/**
 * The CLI as a user runs it (the built bin entry): outputs, exit codes, and every bad input
 * the issue lists, each with a one-line message that says what to do.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { METRIC_KEYS } from '../../src/core/metricKeys';
import { DEMO_TEXT } from '../../src/models/builtInModels';
import { cudaProviderInstalled } from '../../src/onnx/sessions';
import { writeSafetensors } from '../../src/models/safetensors';
import { randomGpt2Weights } from '../reference/gpt2Reference';
import { referenceRow, rng } from '../reference/kdReference';
import {
  GPT2_TOKENIZER,
  ORTGENAI,
  STORIES_BIN,
  STORIES_TOK,
  demoPair,
  needs,
  storiesPair,
  tempDir,
} from '../helpers';

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'distill-lens.js');

function cli(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Fails with the command's output when the exit code or message is not as expected. */
function expectError(r: ReturnType<typeof cli>, code: number, message: RegExp) {
  assert.equal(r.code, code, `exit code ${r.code}, stderr: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace without --verbose');
}

const TEXT = 'Once upon a time, there was a little girl named Lily. She loved to play.';
/** A declaration like the built-in pair's training text (not from its corpus). */
const DECL = DEMO_TEXT;

test('inspect --format json: rows with every metric key, spans, ids and summary', () => {
  const { teacher, student } = demoPair();
  const r = cli(
    'inspect',
    '--teacher',
    teacher,
    '--student',
    student,
    '--text',
    DECL,
    '--format',
    'json',
    '--top-k',
    '3',
  );
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.equal(doc.rows.length, doc.ids.length - 1, 'one row per token after the first');
  for (const row of doc.rows) {
    for (const k of [...METRIC_KEYS, 'hard', 'text', 'start', 'end', 'target'])
      assert.ok(k in row, `row has ${k}`);
    for (const who of ['teacher', 'student'])
      for (const k of ['p', 'logp', 'rank', 'entropy', 'top']) assert.ok(k in row[who], `${who}.${k}`);
    assert.equal(row.teacher.top.length, 3);
    assert.equal(DECL.slice(row.start, row.end), row.text);
  }
  assert.equal(
    doc.rows.map((r: any) => r.text).join(''),
    DECL.slice(doc.rows[0].start),
    'spans tile the text after the first token',
  );
  assert.ok(doc.rows[0].start > 0, 'the first token has no row');
  for (const k of METRIC_KEYS) assert.ok(Number.isFinite(doc.summary.mean[k]), `summary mean ${k}`);
  assert.ok(
    doc.summary.teacherPerplexity < doc.summary.studentPerplexity,
    'the 4-layer teacher beats the 2-layer student',
  );
});

test('inspect --format table and html; --out writes the file', () => {
  const { teacher, student } = demoPair();
  const table = cli('inspect', '--teacher', teacher, '--student', student, '--text', TEXT, '--metric', 'jsd');
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /Jensen–Shannon \(jsd\): colour scale/);
  assert.match(table.stdout, /perplexity: teacher [\d.]+, student [\d.]+/);
  assert.match(table.stdout, /worst tokens by jsd/);
  const out = path.join(tempDir(), 'report.html');
  const html = cli(
    'inspect',
    '--teacher',
    teacher,
    '--student',
    student,
    '--text',
    TEXT,
    '--format',
    'html',
    '--out',
    out,
  );
  assert.equal(html.code, 0, html.stderr);
  const page = fs.readFileSync(out, 'utf8');
  assert.match(page, /^<!doctype html>/);
  assert.doesNotMatch(
    page,
    /<script[^>]+src=|<link[^>]+href=|https?:\/\//,
    'self-contained: no external resources',
  );
  assert.ok(page.includes('"rows":['), 'embeds the rows');
});

test('metrics --input: same numbers as the float64 reference; NaN, Infinity and ragged rows refused', () => {
  const dir = tempDir();
  const r = rng(9);
  const teacher = Array.from({ length: 4 }, () => Array.from({ length: 6 }, () => 3 * r() - 1));
  const student = Array.from({ length: 4 }, () => Array.from({ length: 6 }, () => 3 * r() - 1));
  const targets = [0, 5, 2, 3];
  const file = path.join(dir, 'logits.json');
  fs.writeFileSync(file, JSON.stringify({ teacher, student, targets }));
  const ok = cli('metrics', '--input', file, '--temperature', '1.5', '--beta', '0.2');
  assert.equal(ok.code, 0, ok.stderr);
  const doc = JSON.parse(ok.stdout);
  doc.rows.forEach((row: any, i: number) => {
    const ref = referenceRow(teacher[i], student[i], targets[i], { T: 1.5, beta: 0.2 });
    for (const k of ['fkl', 'rkl', 'jsd', 'gjsd', 'tvd', 'nckd', 'akl'] as const)
      assert.ok(Math.abs(row[k] - ref[k]) < 1e-9, `${k}: ${row[k]} vs ${ref[k]}`);
  });
  const bad = (name: string, text: string, message: RegExp) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    expectError(cli('metrics', '--input', f), 1, message);
  };
  bad('nan.json', '{"teacher": [[NaN, 1]], "student": [[0, 1]], "targets": [0]}', /NaN or Infinity/);
  bad('inf.json', '{"teacher": [[1e999, 1]], "student": [[0, 1]], "targets": [0]}', /finite/);
  bad(
    'ragged.json',
    '{"teacher": [[0, 1], [0, 1, 2]], "student": [[0, 1], [0, 1]], "targets": [0, 1]}',
    /ragged/,
  );
  bad(
    'count.json',
    '{"teacher": [[0, 1]], "student": [[0, 1]], "targets": [0, 1]}',
    /one row of each per target/,
  );
  bad(
    'target.json',
    '{"teacher": [[0, 1]], "student": [[0, 1]], "targets": [7]}',
    /targets must be integers from 0 to 1/,
  );
});

test('usage errors exit 2: unknown metric, text and file together or missing, bad numbers', () => {
  const { teacher, student } = demoPair();
  expectError(
    cli('inspect', '--teacher', teacher, '--student', student, '--text', 'hi', '--metric', 'kl'),
    2,
    /unknown metric "kl": choose one of fkl, rkl/,
  );
  expectError(
    cli('inspect', '--teacher', teacher, '--student', student),
    2,
    /exactly one of --text or --file/,
  );
  expectError(
    cli('inspect', '--teacher', teacher, '--student', student, '--text', 'a', '--file', 'b'),
    2,
    /exactly one of --text or --file/,
  );
  expectError(
    cli('inspect', '--teacher', teacher, '--student', student, '--text', 'a', '--temperature', '-1'),
    2,
    /--temperature must be a positive number/,
  );
  expectError(cli('frobnicate'), 2, /unknown command/);
  expectError(
    cli('inspect', '--teacher', teacher, '--student', student, '--text', '   '),
    2,
    /the text is empty/,
  );
});

test(
  'bad model folders: missing, without tokenizer, corrupt ONNX, truncated safetensors',
  needs('stories260k', 'ortGenaiLlama'),
  () => {
    const dir = tempDir();
    const { teacher, student } = storiesPair();
    expectError(
      cli('inspect', '--teacher', path.join(dir, 'nope'), '--student', student, '--text', TEXT),
      1,
      /model folder .*nope does not exist/,
    );
    const noTok = path.join(dir, 'notok');
    fs.cpSync(teacher, noTok, { recursive: true });
    fs.rmSync(path.join(noTok, 'tokenizer.json'));
    expectError(
      cli('inspect', '--teacher', noTok, '--student', student, '--text', TEXT),
      1,
      /has no tokenizer\.json/,
    );
    const corrupt = path.join(dir, 'corrupt-onnx');
    fs.cpSync(ORTGENAI, corrupt, { recursive: true });
    const onnxBytes = fs.readFileSync(path.join(corrupt, 'model.onnx'));
    fs.writeFileSync(path.join(corrupt, 'model.onnx'), onnxBytes.subarray(0, onnxBytes.length >> 1));
    expectError(
      cli('inspect', '--teacher', corrupt, '--student', corrupt, '--text', TEXT),
      1,
      /cannot load .*model\.onnx.*truncated or corrupt/,
    );
    const truncated = path.join(dir, 'truncated');
    fs.cpSync(teacher, truncated, { recursive: true });
    const st = fs.readFileSync(path.join(truncated, 'model.safetensors'));
    fs.writeFileSync(path.join(truncated, 'model.safetensors'), st.subarray(0, st.length - 1000));
    expectError(
      cli('inspect', '--teacher', truncated, '--student', student, '--text', TEXT),
      1,
      /not a valid safetensors file .*truncated/,
    );
  },
);

test(
  'teacher and student vocabularies that differ: compared on exact spans (JSON spans, the table, the HTML report by k3)',
  needs('stories260k', 'ortGenaiLlama'),
  () => {
    const { teacher } = storiesPair();
    const r = cli('inspect', '--teacher', teacher, '--student', ORTGENAI, '--text', TEXT, '--format', 'json');
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout);
    assert.equal(json.teacher.vocab, 512);
    assert.equal(json.student.vocab, 32000);
    assert.ok(json.spans.length > 0);
    // the rows: the student's tokens inside spans, with their span's k1 and no per-token fkl (null)
    assert.ok(json.rows.length >= json.spans.length);
    for (const row of json.rows) {
      assert.equal(row.k1, json.spans[row.span].k1);
      assert.equal(row.fkl, null);
    }
    for (const s of json.spans) assert.equal(s.text, TEXT.slice(s.start, s.end));
    assert.match(r.stderr, /tokenize differently .* compared exactly on \d+ spans/);
    const table = cli('inspect', '--teacher', teacher, '--student', ORTGENAI, '--text', TEXT);
    assert.match(table.stdout, /spans compared exactly/);
    // the HTML report draws the student's tokens by their span's k3, and says why
    const html = cli(
      'inspect',
      '--teacher',
      teacher,
      '--student',
      ORTGENAI,
      '--text',
      TEXT,
      '--format',
      'html',
    );
    assert.equal(html.code, 0, html.stderr);
    assert.match(html.stdout, /<b>The tokenizers differ<\/b>: compared on \d+ spans/);
    assert.match(html.stdout, /"metric":"k3"/);
  },
);

test('a text of a single token, and a non-UTF-8 file', needs('gpt2Tokenizer'), () => {
  const dir = tempDir();
  const gpt2 = path.join(dir, 'gpt2');
  fs.mkdirSync(gpt2);
  const cfg = { n_embd: 16, n_layer: 1, n_head: 2, vocab_size: 50257, n_positions: 32 };
  writeSafetensors(path.join(gpt2, 'model.safetensors'), randomGpt2Weights(cfg, rng(1)));
  fs.writeFileSync(
    path.join(gpt2, 'config.json'),
    JSON.stringify({ architectures: ['GPT2LMHeadModel'], ...cfg }),
  );
  fs.copyFileSync(path.join(GPT2_TOKENIZER, 'tokenizer.json'), path.join(gpt2, 'tokenizer.json'));
  expectError(
    cli('inspect', '--teacher', gpt2, '--student', gpt2, '--text', 'Hello'),
    2,
    /single token .*select more text/,
  );
  // this tokenizer.json has whitespace-run tokens beyond the model's 50257 entries
  expectError(
    cli('inspect', '--teacher', gpt2, '--student', gpt2, '--text', 'indented:\n        code'),
    1,
    /token id 5\d+ .* vocabulary has 50257 entries: the tokenizer\.json does not belong to these models/,
  );
  const latin1 = path.join(dir, 'latin1.txt');
  fs.writeFileSync(latin1, Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
  expectError(cli('inspect', '--teacher', gpt2, '--student', gpt2, '--file', latin1), 1, /not valid UTF-8/);
  // texts longer than the context are analysed in windows (32 positions here)
  const long = cli(
    'inspect',
    '--teacher',
    gpt2,
    '--student',
    gpt2,
    '--text',
    'one two three four five six seven eight nine ten '.repeat(8),
    '--format',
    'json',
  );
  assert.equal(long.code, 0, long.stderr);
  const doc = JSON.parse(long.stdout);
  assert.equal(doc.rows.length, doc.ids.length - 1);
  assert.ok(doc.windows.length > 1);
  assert.match(long.stderr, /analysed in \d+ overlapping windows/);
  // and beyond --max-tokens, refused
  expectError(
    cli('inspect', '--teacher', gpt2, '--student', gpt2, '--text', 'word '.repeat(100), '--max-tokens', '50'),
    2,
    /has 10\d tokens, more than the limit of 50/,
  );
});

test(
  'convert llama2c: truncated checkpoint, bad --layers, and an existing output folder is left alone',
  needs('stories260k'),
  () => {
    const dir = tempDir();
    const cut = path.join(dir, 'cut.bin');
    fs.writeFileSync(cut, fs.readFileSync(STORIES_BIN).subarray(0, 500_000));
    expectError(
      cli(
        'convert',
        'llama2c',
        '--checkpoint',
        cut,
        '--tokenizer',
        STORIES_TOK,
        '--out',
        path.join(dir, 'x'),
      ),
      1,
      /header describes a model of 1056540 bytes but the file has 500000/,
    );
    assert.equal(fs.existsSync(path.join(dir, 'x')), false, 'nothing written');
    expectError(
      cli(
        'convert',
        'llama2c',
        '--checkpoint',
        STORIES_BIN,
        '--tokenizer',
        STORIES_TOK,
        '--out',
        path.join(dir, 'y'),
        '--layers',
        '9',
      ),
      1,
      /--layers must be an integer from 1 to 5/,
    );
    const existing = path.join(dir, 'existing');
    fs.mkdirSync(existing);
    fs.writeFileSync(path.join(existing, 'mine.txt'), 'keep me');
    expectError(
      cli('convert', 'llama2c', '--checkpoint', STORIES_BIN, '--tokenizer', STORIES_TOK, '--out', existing),
      1,
      /already exists and is not empty/,
    );
    assert.deepEqual(fs.readdirSync(existing), ['mine.txt']);
    const ok = cli(
      'convert',
      'llama2c',
      '--checkpoint',
      STORIES_BIN,
      '--tokenizer',
      STORIES_TOK,
      '--out',
      path.join(dir, 'student'),
      '--layers',
      '2',
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /2 layers, width 64, vocabulary 512/);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'student')).sort(), [
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    assert.equal(
      fs.readdirSync(dir).filter((f) => f.includes('partial')).length,
      0,
      'no temporary folders left',
    );
  },
);

test('--verbose prints the stack; --help exits 0', () => {
  const r = cli('inspect', '--teacher', '/nope', '--student', '/nope', '--text', 'x', '--verbose');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\n\s+at /);
  assert.equal(cli('--help').code, 0);
});

test(
  'an unavailable device falls back to the CPU with a message that says how to enable it',
  cudaProviderInstalled()
    ? { skip: 'this machine has the CUDA provider, so CUDA is not unavailable here' }
    : {},
  () => {
    const { teacher, student } = demoPair();
    const cuda = cli(
      'inspect',
      '--teacher',
      teacher,
      '--student',
      student,
      '--text',
      TEXT,
      '--device',
      'cuda',
      '--format',
      'json',
    );
    assert.equal(cuda.code, 0, cuda.stderr);
    assert.equal(JSON.parse(cuda.stdout).teacher.device, 'cpu');
    assert.match(
      cuda.stderr,
      /no CUDA provider; using the CPU\. To use the GPU, install the CUDA provider with `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node`/,
    );
    if (process.platform !== 'win32') {
      const dml = cli(
        'inspect',
        '--teacher',
        teacher,
        '--student',
        student,
        '--text',
        TEXT,
        '--device',
        'dml',
        '--format',
        'json',
      );
      assert.equal(dml.code, 0, dml.stderr);
      assert.match(dml.stderr, /DirectML runs only on Windows; using the CPU/);
    }
    expectError(
      cli('inspect', '--teacher', teacher, '--student', student, '--text', TEXT, '--device', 'tpu'),
      2,
      /argument 'tpu' is invalid\. Allowed choices are auto, cpu, cuda, dml/,
    );
  },
);

test(
  'distill: trains, prints the held-out change and writes the folder; Ctrl-C cancels and writes nothing; bad flags exit 2',
  needs('stories260k'),
  async () => {
    const { teacher, student } = storiesPair();
    const dir = tempDir();
    const data = path.join(dir, 'data.txt');
    fs.writeFileSync(
      data,
      `${TEXT}\n\nTom had a big red ball. He liked to throw it high in the sky. One day the ball went over the fence.\n`.repeat(
        6,
      ),
    );
    const out = path.join(dir, 'out');
    const ok = cli(
      'distill',
      '--teacher',
      teacher,
      '--student',
      student,
      '--data',
      data,
      '--out',
      out,
      '--steps',
      '20',
      '--seq-len',
      '32',
      '--loss',
      'dkd',
      '--temperature',
      '2',
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /forward KL\s+\d/);
    assert.match(ok.stderr, /distilling .* 20\/20 steps/);
    assert.equal(
      JSON.parse(fs.readFileSync(path.join(out, 'run.json'), 'utf8')).settings.loss.scaleByT2,
      true,
    );
    // Ctrl-C while training
    const { spawn } = await import('node:child_process');
    const cancelled = path.join(dir, 'cancelled');
    const child = spawn(
      process.execPath,
      [
        BIN,
        'distill',
        '--teacher',
        teacher,
        '--student',
        student,
        '--data',
        data,
        '--out',
        cancelled,
        '--steps',
        '100000',
        '--seq-len',
        '32',
      ],
      { env: { ...process.env, NO_COLOR: '1' } },
    );
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
      if (/distilling/.test(stderr) && !child.killed) child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 130, stderr);
    assert.match(stderr, /cancelled; no model was written/);
    assert.equal(fs.existsSync(cancelled), false);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['data.txt', 'out'], 'no partial folder');
    expectError(
      cli(
        'distill',
        '--teacher',
        teacher,
        '--student',
        student,
        '--data',
        data,
        '--out',
        path.join(dir, 'x'),
        '--loss',
        'kl',
      ),
      2,
      /--loss.*kl.*choices/i,
    );
    expectError(
      cli('distill', '--teacher', teacher, '--student', student, '--out', path.join(dir, 'x')),
      2,
      /--data/,
    );
    expectError(
      cli('distill', '--teacher', teacher, '--student', student, '--data', data, '--out', out),
      2,
      /already exists and is not empty/,
    );
  },
);

test(
  'distill a student from a teacher whose tokenizer differs: refused for the per-token losses naming --loss uld; --loss uld trains and prints ULD and the span log-ratio',
  needs('stories260k', 'ortGenaiLlama'),
  () => {
    const { student } = storiesPair();
    const dir = tempDir();
    const data = path.join(dir, 'data.txt');
    fs.writeFileSync(
      data,
      `${TEXT}\n\nTom had a big red ball. He liked to throw it high in the sky.\n`.repeat(3),
    );
    const args = ['distill', '--teacher', ORTGENAI, '--student', student, '--data', data, '--steps', '3'];
    expectError(cli(...args, '--out', path.join(dir, 'a')), 1, /student vocabulary 512 .*--loss uld/);
    const ok = cli(
      ...args,
      '--out',
      path.join(dir, 'b'),
      '--loss',
      'uld',
      '--ce-weight',
      '0.5',
      '--seq-len',
      '32',
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /held-out \(\d+ tokens, \d+ spans\)/);
    assert.match(ok.stdout, /ULD \(approximate\)\s+\d/);
    assert.match(ok.stdout, /span log P_T − log P_S\s+-?\d/);
    assert.match(ok.stderr, /tokenize differently: trained with ULD on \d+ spans/);
    const record = JSON.parse(fs.readFileSync(path.join(dir, 'b', 'run.json'), 'utf8'));
    assert.deepEqual(record.settings.loss, { key: 'uld', weight: 1.5, ceWeight: 0.5 });
    assert.equal(record.heldOut.before.fkl, null, 'no per-token KL across vocabularies (NaN in JSON)');
    expectError(
      cli(...args, '--out', path.join(dir, 'c'), '--loss', 'uld', '--uld-weight', '-1'),
      2,
      /--uld-weight must be a number ≥ 0/,
    );
  },
);

test('demo: the built-in pair analyses the sample and writes the HTML report', () => {
  const out = path.join(tempDir(), 'demo.html');
  const r = cli('demo', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /"riority"=\d/, 'the sample declaration, token by token');
  assert.match(r.stdout, /teacher .*models[\\/]demo[\\/]teacher/);
  assert.match(r.stdout, /perplexity: teacher/);
  assert.match(fs.readFileSync(out, 'utf8'), /<html/i);
});

test('distill --method: every sequence-level flag is declared and checked before any work, by name', () => {
  const { teacher, student } = demoPair();
  const dir = tempDir();
  const data = path.join(dir, 'p.jsonl');
  fs.writeFileSync(data, '{"prompt": "export interface"}\n');
  const base = ['distill', '--teacher', teacher, '--student', student, '--data', data];
  const run = (out: string, ...flags: string[]) => cli(...base, '--out', path.join(dir, out), ...flags);
  // declared: a bad value is refused by the flag's own check (exit 2)
  for (const [flag, value] of [
    ['--mix-alpha', '2'],
    ['--reward-scaling', '0'],
    ['--reward-clip', '-1'],
    ['--gamma', '3'],
    ['--cliprange', '2'],
    ['--ppo-epochs', '0'],
    ['--lmbda', '7'],
    ['--teacher-samples', '0'],
    ['--max-new-tokens', '0'],
    ['--prompt-tokens', '0'],
  ])
    expectError(run('x', '--method', 'minillm', flag, value), 2, new RegExp(flag));
  expectError(run('x', '--method', 'minillm', '--advantage-from', 't+2'), 2, /--advantage-from/);
  // checked by the run before it loads anything
  expectError(
    run('x', '--method', 'onpolicy', '--top-p', '0.9'),
    2,
    /--method onpolicy samples from the student at --gen-temperature without truncation: --top-p is not built/,
  );
  expectError(
    run('x', '--method', 'gkd', '--loss', 'fkl'),
    2,
    /--method gkd trains on TRL's generalised JSD/,
  );
  expectError(
    run('x', '--method', 'minillm', '--lm-data', path.join(dir, 'nope')),
    2,
    /--lm-data .* does not exist/,
  );
  expectError(run('x', '--reuse-rollouts', data), 2, /--reuse-rollouts needs --method seqkd/);
  // feature distillation's flags
  expectError(run('x', '--stages', 'kd:1,foo:2'), 2, /--stages: "foo:2" is not KIND:STEPS/);
  expectError(
    run('x', '--feature-loss', 'mse', '--feature-layers', '1-2'),
    2,
    /"1-2" is not STUDENT:TEACHER/,
  );
  expectError(
    run('x', '--feature-loss', 'mse', '--feature-weight', '-1'),
    2,
    /--feature-weight must be a number ≥ 0/,
  );
  expectError(
    run('x', '--feature-loss', 'mse', '--projection-lr-scale', '0'),
    2,
    /--projection-lr-scale must be a number > 0/,
  );
  expectError(run('x', '--projection-lr-scale', '10'), 2, /--projection-lr-scale needs --feature-loss/);
  expectError(
    run('x', '--method', 'onpolicy', '--feature-loss', 'mse'),
    2,
    /--feature-loss and --stages are built for --method word, not onpolicy/,
  );
  expectError(run('x', '--stages', 'kd:1,features:2'), 2, /--stages with features needs the feature loss/);
  assert.ok(!fs.existsSync(path.join(dir, 'x')), 'nothing written');
});
