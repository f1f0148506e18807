/**
 * Runs inside the VS Code extension host (loaded as extensionTestsPath). A small sequential
 * runner: each test prints "ok N - name" or "not ok N - name", then the summary line
 * "N passed, N failed" that the CI log reader recognises.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import * as vscode from 'vscode';
import type { DistillLensApi } from '../../../src/extension/extension';

const tests: { name: string; fn: () => Promise<void> }[] = [];
const test = (name: string, fn: () => Promise<void>) => tests.push({ name, fn });
const nextPoll = () => new Promise((r) => setTimeout(r, 100));

/** Waits for a condition of the extension's state (there is no event for each of them). */
async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await nextPoll();
  }
}

let api: DistillLensApi;
const workspace = process.env.DISTILL_LENS_TEST_WORKSPACE!;
const sampleUri = () => vscode.Uri.file(path.join(workspace, 'sample.txt'));
const config = () => vscode.workspace.getConfiguration('distillLens');

/** The hovers' markdown at a character offset of the editor's document, joined. */
async function hoverText(editor: vscode.TextEditor, offset: number): Promise<string> {
  const hovers = await vscode.commands.executeCommand<vscode.Hover[]>(
    'vscode.executeHoverProvider',
    editor.document.uri,
    editor.document.positionAt(offset),
  );
  return hovers
    .flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : (c as vscode.MarkdownString).value)))
    .join('\n');
}

async function openSample(): Promise<vscode.TextEditor> {
  const doc = await vscode.workspace.openTextDocument(sampleUri());
  return vscode.window.showTextDocument(doc, { preview: false });
}

/**
 * The sample open with its first line analysed: reused when an earlier test left an
 * analysis, made here otherwise, so that each test can also run alone
 * (DISTILL_LENS_TEST_FILTER).
 */
async function analysedSample(): Promise<vscode.TextEditor> {
  const editor = await openSample();
  if (!api.controller.get(editor.document.uri)) {
    const firstParagraph = editor.document.lineAt(0).range;
    editor.selection = new vscode.Selection(firstParagraph.start, firstParagraph.end);
    assert.ok(await vscode.commands.executeCommand('distillLens.analyzeSelection'), api.controller.lastError);
  }
  return editor;
}

test('activates without loading ONNX Runtime, and registers every command', async () => {
  const ext = vscode.extensions.getExtension<DistillLensApi>('distill-lens.distill-lens');
  assert.ok(ext, 'extension installed');
  api = await ext.activate();
  assert.ok(api.controller && api.panel);
  const loaded = Object.keys(require.cache).filter((k) => k.includes('onnxruntime'));
  assert.deepEqual(loaded, [], 'ONNX Runtime is not loaded in the extension host');
  const commands = (await vscode.commands.getCommands(true)).filter((c) => c.startsWith('distillLens.'));
  for (const c of [
    'analyzeSelection',
    'analyzeDocument',
    'clear',
    'chooseMetric',
    'chooseTeacher',
    'chooseStudent',
    'openPanel',
    'exportReport',
    'runDistillation',
    'continueWithStudent',
    'continueWithTeacher',
    'continueWithMix',
    'compareContinuations',
  ]) {
    assert.ok(commands.includes(`distillLens.${c}`), `command distillLens.${c}`);
  }
});

test('Analyze Selection decorates exactly the analysed tokens', async () => {
  const editor = await openSample();
  const doc = editor.document;
  const firstParagraph = doc.lineAt(0).range;
  editor.selection = new vscode.Selection(firstParagraph.start, firstParagraph.end);
  const result = await vscode.commands.executeCommand<{ tokens: number }>('distillLens.analyzeSelection');
  assert.ok(result, `analysis ran (${api.controller.lastError ?? ''})`);
  const stored = api.controller.get(doc.uri)!;
  assert.equal(result.tokens, stored.placed.rows.length, 'the command says how many tokens it analysed');
  const rows = stored.placed.rows;
  assert.ok(rows.length > 15);
  for (const r of rows)
    assert.equal(doc.getText(new vscode.Range(doc.positionAt(r.start), doc.positionAt(r.end))), r.row.text);
  const painted = api.controller.decorations.painted.get(doc.uri.toString());
  assert.ok(painted, 'decorations painted');
  assert.deepEqual(
    painted.tokens.map((b) => [b.start, b.end]),
    rows.map((r) => [r.start, r.end]),
  );
  assert.ok(painted.tokens.every((b) => /^heat\d$/.test(b.cls)));
  assert.ok(new Set(painted.tokens.map((b) => b.cls)).size > 2, 'several colour bands in use');
  assert.match(api.controller.statusBar.text, /^\$\(flame\) fkl 0–[\d.]+$/);
});

test('the hover shows the token, both models and every metric group', async () => {
  const editor = await analysedSample();
  const text = await hoverText(editor, editor.document.getText().indexOf(' number of') + 2);
  assert.match(text, /\*\*Distill Lens\*\* · token/);
  for (const s of [
    'Divergences',
    'Target / non-target (DKD)',
    'Difficulty',
    'Estimators at the observed token',
    'Top tokens',
    '| rank |',
    'jsd',
    'nckd',
    'k3',
  ])
    assert.ok(text.includes(s), `hover has ${s}`);
  const none = await vscode.commands.executeCommand<vscode.Hover[]>(
    'vscode.executeHoverProvider',
    editor.document.uri,
    editor.document.positionAt(editor.document.getText().length - 3),
  );
  assert.ok(
    !none.some((h) =>
      h.contents.some((c) =>
        (typeof c === 'string' ? c : (c as vscode.MarkdownString).value).includes('Distill Lens'),
      ),
    ),
    'no hover outside the analysis',
  );
});

test('changing the metric setting recolours at once and the hover follows', async () => {
  await analysedSample();
  await config().update('metric', 'jsd', vscode.ConfigurationTarget.Global);
  await until(
    'repaint with jsd',
    () => api.controller.decorations.painted.get(sampleUri().toString())?.coloring === 'jsd',
  );
  assert.match(api.controller.statusBar.text, /jsd/);
  await vscode.commands.executeCommand('distillLens.chooseMetric', 'fkl');
  await until(
    'repaint with fkl',
    () => api.controller.decorations.painted.get(sampleUri().toString())?.coloring === 'fkl',
  );
});

test('the panel receives the rows', async () => {
  await vscode.commands.executeCommand('distillLens.openPanel');
  await until('panel ready', () => api.panel.received.includes('ready'), 30_000);
  await analysedSample();
  await until(
    'panel shows the sample',
    () => api.panel.state.rows > 0 && api.panel.state.uri === sampleUri().toString(),
  );
});

test('Analyze Layers of Selection: the panel gets the layer view with every token on the heatmap, the hover says where the student settles', async () => {
  await vscode.commands.executeCommand('distillLens.openPanel');
  const editor = await openSample();
  const line = editor.document.lineAt(0).range;
  editor.selection = new vscode.Selection(line.start, line.end);
  assert.ok(await vscode.commands.executeCommand('distillLens.analyzeLayers'), api.controller.lastError);
  await until('the panel shows the layers', () => (api.panel.state.layers?.rows ?? 0) > 0);
  const layers = api.panel.state.layers!;
  assert.equal(layers.shown, layers.rows, 'each layer-view row is a token of the heatmap');
  const stored = api.controller.get(editor.document.uri)!;
  const view = stored.parts.find((p) => p.result.layers)!.result.layers!;
  assert.equal(view.student.length, 3, "the built-in student's embeddings and two layers");
  assert.equal(view.teacher.length, 5);
  const row = stored.placed.rows[3];
  const hovers = await vscode.commands.executeCommand<vscode.Hover[]>(
    'vscode.executeHoverProvider',
    editor.document.uri,
    editor.document.positionAt(row.start),
  );
  const text = hovers
    .flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : (c as vscode.MarkdownString).value)))
    .join('\n');
  assert.match(text, /student settles at layer [0-2] of 2 \(teacher: [0-4] of 4\)/);
});

test('Run Distillation with feature distillation in two stages: projections beside the student; re-analysed, the Layers view has the CKA before and after', async () => {
  await vscode.commands.executeCommand('distillLens.openPanel');
  const editor = await openSample();
  const line = editor.document.lineAt(0).range;
  editor.selection = new vscode.Selection(line.start, line.end);
  assert.ok(await vscode.commands.executeCommand('distillLens.analyzeLayers'), api.controller.lastError);
  const out = path.join(workspace, 'feature-student');
  const studentBefore = config().get<string>('student');
  try {
    const record = await vscode.commands.executeCommand<{ settings: { stages: { kind: string }[] } }>(
      'distillLens.runDistillation',
      {
        data: { currentFile: true },
        loss: 'fkl',
        feature: { loss: 'mse', twoStages: true },
        steps: 4,
        out,
        useResult: true,
      },
    );
    assert.ok(record, `distillation ran (${api.controller.lastError ?? ''})`);
    assert.deepEqual(
      record.settings.stages.map((s) => s.kind),
      ['kd', 'kd+features'],
    );
    assert.deepEqual(
      api.distillation.training!.stages!.map((s) => [s.from, s.to]),
      [
        [1, 2],
        [3, 4],
      ],
    );
    assert.ok(fs.existsSync(path.join(out, 'projections.safetensors')));
    await until(
      'the re-analysis has the layers before and after',
      () => api.panel.state.layers?.before === true,
    );
  } finally {
    await config().update('student', studentBefore, vscode.ConfigurationTarget.Global);
  }
});

test('the panel comes back with its rows after being hidden', async () => {
  await vscode.commands.executeCommand('distillLens.openPanel');
  await until('panel ready', () => api.panel.received.includes('ready'), 30_000);
  await analysedSample();
  const readies = api.panel.received.filter((m) => m === 'ready').length;
  await vscode.commands.executeCommand('workbench.view.explorer');
  await until('the panel is hidden', () => !api.panel.visible);
  await vscode.commands.executeCommand('distillLens.openPanel');
  await until(
    'the reloaded panel asks for its state',
    () => api.panel.received.filter((m) => m === 'ready').length > readies,
    30_000,
  );
  assert.ok(api.panel.state.rows > 0);
  await openSample();
});

test('edits drop the numbers of the edited token, dim the later ones as stale; undo brings them back', async () => {
  const editor = await analysedSample();
  const before = api.controller.get(editor.document.uri)!.placed.rows.map((r) => ({ ...r }));
  // a token of at least three characters well inside the line, edited in its middle
  const target = before.find((r) => r.start > 10 && r.end - r.start >= 3)!;
  const earlier = before.filter((r) => r.end <= target.start);
  const after = before.filter((r) => r.start >= target.end);
  await editor.edit((b) => b.insert(editor.document.positionAt(target.start + 1), 'XX'));
  const now = api.controller.get(editor.document.uri)!.placed.rows;
  assert.ok(!now.some((r) => r.row === target.row), 'the edited token lost its numbers');
  assert.equal(now.length, before.length - 1);
  for (const r of earlier)
    assert.ok(
      now.some((n) => n.row === r.row && n.start === r.start && !n.stale),
      'earlier tokens keep their numbers',
    );
  for (const r of after)
    assert.ok(
      now.some((n) => n.row === r.row && n.start === r.start + 2 && n.end === r.end + 2 && n.stale),
      'later tokens moved by the insertion and are stale',
    );
  await until('the stale tokens are painted dimmed', () =>
    api.controller.decorations.painted
      .get(editor.document.uri.toString())
      ?.tokens.some((t) => t.cls === 'stale'),
  );
  assert.match(api.controller.statusBar.text, new RegExp(`${after.length} stale`));
  const staleHover = await vscode.commands.executeCommand<vscode.Hover[]>(
    'vscode.executeHoverProvider',
    editor.document.uri,
    editor.document.positionAt(after[after.length - 1].start + 2 + 1),
  );
  const hoverText = staleHover
    .flatMap((h) => h.contents.map((c) => (c as vscode.MarkdownString).value))
    .join('\n');
  assert.match(hoverText, /\*\*Out of date\*\*: the text before this token changed/);
  assert.match(String(api.controller.statusBar.tooltip), /Re-analysis: off/);
  await vscode.commands.executeCommand('undo');
  const restored = api.controller.get(editor.document.uri)!.placed.rows;
  assert.deepEqual(
    restored.map((r) => [r.start, r.end, r.stale]),
    before.map((r) => [r.start, r.end, false]),
    'the text is as analysed again: every token has its numbers back',
  );
});

test('with distillLens.reanalyze = onIdle, the edited part is analysed again once typing pauses', async () => {
  const editor = await analysedSample();
  await config().update('reanalyze', 'onIdle', vscode.ConfigurationTarget.Global);
  await config().update('reanalyzeDelay', 300, vscode.ConfigurationTarget.Global);
  try {
    const rows = api.controller.get(editor.document.uri)!.placed.rows;
    const target = rows.find((r) => r.start > 10 && r.end - r.start >= 3)!;
    await editor.edit((b) => b.insert(editor.document.positionAt(target.start + 1), 'Z'));
    assert.ok(api.controller.get(editor.document.uri)!.placed.staleCount > 0, 'stale right after the edit');
    const again = await until(
      'the edited part analysed again',
      () => {
        const a = api.controller.get(editor.document.uri)!;
        return a.placed.staleCount === 0 && a.placed.rowAt(target.start + 1) ? a : undefined;
      },
      60_000,
    );
    // the token that now holds the typed letter has numbers again
    assert.ok(again.placed.rowAt(target.start + 1)!.row.text.includes('Z'));
    assert.match(String(api.controller.statusBar.tooltip), /Re-analysis: on idle, 300 ms/);
  } finally {
    await config().update('reanalyze', undefined, vscode.ConfigurationTarget.Global);
    await config().update('reanalyzeDelay', undefined, vscode.ConfigurationTarget.Global);
    await vscode.commands.executeCommand('undo');
  }
});

test('a served teacher (vLLM, its key in the secret storage): the analysis is over its top K, the hover and the panel say so; Run Distillation with it labels its held-out KL', async () => {
  const editor = await openSample();
  const before = config().get<string>('teacher');
  await vscode.commands.executeCommand('distillLens.clear');
  await config().update(
    'teacher',
    process.env.DISTILL_LENS_TEST_SERVED_TEACHER,
    vscode.ConfigurationTarget.Global,
  );
  await config().update('servedTeacherTopK', 6, vscode.ConfigurationTarget.Global);
  try {
    const line = editor.document.lineAt(0).range;
    editor.selection = new vscode.Selection(line.start, line.end);
    // without the key the server refuses, and the message says what to set
    assert.ok(!(await vscode.commands.executeCommand('distillLens.analyzeSelection')));
    assert.match(api.controller.lastError ?? '', /refused a request without an API key \(HTTP 401\)/);
    await api.secrets.store('distillLens.servedTeacherApiKey', 'sesame');
    assert.ok(await vscode.commands.executeCommand('distillLens.analyzeSelection'), api.controller.lastError);
    const a = api.controller.get(editor.document.uri)!;
    assert.equal(a.parts[0].result.teacherSupport, 'top-6+rest');
    const text = await hoverText(editor, editor.document.getText().indexOf(' number of') + 2);
    assert.match(text, /\*\*Served teacher\*\* \(top-6\+rest\): the divergences are over its top tokens/);
    await vscode.commands.executeCommand('distillLens.openPanel');
    await until('the panel shows the served teacher', () => api.panel.state.teacherSupport === 'top-6+rest');

    // Run Distillation with it: word-level on its top K + 1 (19 + 1), the held-out KL labelled
    const record = await vscode.commands.executeCommand<{ heldOut: { teacherSupport?: string } }>(
      'distillLens.runDistillation',
      {
        data: { selection: true },
        loss: 'fkl',
        steps: 3,
        out: path.join(workspace, 'served-distilled'),
        watch: '',
        feature: null,
      },
    );
    assert.equal(record?.heldOut.teacherSupport, 'top-19+rest', api.controller.lastError);
    assert.match(
      api.distillation.training?.message ?? '',
      /held-out forward KL over the served teacher's top-19\+rest buckets/,
    );
  } finally {
    await api.secrets.delete('distillLens.servedTeacherApiKey');
    fs.rmSync(path.join(workspace, 'served-distilled'), { recursive: true, force: true });
    await config().update('teacher', before, vscode.ConfigurationTarget.Global);
    await config().update('servedTeacherTopK', undefined, vscode.ConfigurationTarget.Global);
    await vscode.commands.executeCommand('distillLens.clear');
  }
});

test("a student whose tokenizer differs: each student token painted by its span, the hover lists both models' tokens of the span, the panel counts the spans; Run Distillation with ULD", async () => {
  const editor = await openSample();
  const before = config().get<string>('student');
  await vscode.commands.executeCommand('distillLens.clear');
  await config().update(
    'student',
    process.env.DISTILL_LENS_TEST_ACROSS_STUDENT,
    vscode.ConfigurationTarget.Global,
  );
  try {
    const line = editor.document.lineAt(0).range;
    editor.selection = new vscode.Selection(line.start, line.end);
    assert.ok(await vscode.commands.executeCommand('distillLens.analyzeSelection'), api.controller.lastError);
    const a = api.controller.get(editor.document.uri)!;
    const spans = a.parts[0].result.spans!;
    assert.ok(spans.length > 3, 'compared on spans');
    const rows = a.placed.rows;
    assert.ok(rows.length >= spans.length && rows.every((r) => r.row.span !== undefined));
    // painted by k3 (the metric setting, fkl, needs one vocabulary): the span's value on each of its tokens
    const painted = api.controller.decorations.painted.get(editor.document.uri.toString())!;
    assert.equal(painted.coloring, 'k3');
    assert.deepEqual(
      painted.tokens.map((t) => [t.start, t.end]),
      rows.map((r) => [r.start, r.end]),
    );
    // the hover of a token inside a span of several student tokens, or any
    const row = rows.find((r) => spans[r.row.span!].studentTokens > 1) ?? rows[0];
    const span = spans[row.row.span!];
    const text = await hoverText(editor, row.start);
    assert.match(text, /the tokenizers differ/);
    assert.ok(text.includes(`**Span** \`${JSON.stringify(span.text)}\``), text);
    assert.match(text, /ULD \(a cross-vocabulary approximation\)/);
    assert.match(text, /\| log P\(span\) \| -?\d/);
    await vscode.commands.executeCommand('distillLens.openPanel');
    const across = await until('the panel counts the spans', () => api.panel.state.acrossTokenizers);
    assert.equal(across.spans, spans.length);
    assert.equal(
      across.studentTokens,
      spans.reduce((n, s) => n + s.studentTokens, 0),
    );

    // Run Distillation with ULD: the held-out numbers are ULD and the span log-ratio
    const record = await vscode.commands.executeCommand<{ heldOut: { after: { uld?: number } } }>(
      'distillLens.runDistillation',
      {
        data: { selection: true },
        loss: 'uld',
        steps: 3,
        out: path.join(workspace, 'uld-distilled'),
        watch: '',
      },
    );
    assert.ok(record && Number.isFinite(record.heldOut.after.uld), api.controller.lastError);
    assert.match(
      api.distillation.training?.message ?? '',
      /held-out ULD across tokenizers \(an approximation\)/,
    );
  } finally {
    fs.rmSync(path.join(workspace, 'uld-distilled'), { recursive: true, force: true });
    await config().update('student', before, vscode.ConfigurationTarget.Global);
    await vscode.commands.executeCommand('distillLens.clear');
  }
});

test('Export Report writes JSON, CSV and HTML', async () => {
  const editor = await openSample();
  editor.selection = new vscode.Selection(0, 0, 0, 0);
  await vscode.commands.executeCommand('distillLens.analyzeSelection');
  for (const format of ['json', 'csv', 'html'] as const) {
    const target = vscode.Uri.file(path.join(workspace, `report.${format}`));
    const written = await vscode.commands.executeCommand<vscode.Uri>(
      'distillLens.exportReport',
      format,
      target,
    );
    assert.equal(written?.fsPath, target.fsPath);
    const text = fs.readFileSync(target.fsPath, 'utf8');
    if (format === 'json') assert.ok(JSON.parse(text).rows.length > 10);
    if (format === 'csv') assert.match(text.split('\r\n')[0], /^index,text,start,end,target,fkl,rkl,/);
    if (format === 'html') assert.match(text, /^<!doctype html>/);
  }
});

test('Analyze Document covers the whole file', async () => {
  const editor = await openSample();
  assert.ok(await vscode.commands.executeCommand('distillLens.analyzeDocument'), api.controller.lastError);
  const stored = api.controller.get(editor.document.uri)!;
  const last = Math.max(...stored.placed.rows.map((r) => r.end));
  assert.ok(last >= editor.document.getText().trimEnd().length - 1, 'reaches the end of the document');
});

test('Analyze Document paints part by part, and typing during the run keeps every token in place', async () => {
  // about 48,000 characters: several parts, so the run is still going when the user types
  const paragraph = (i: number) =>
    Array.from(
      { length: 60 },
      (_, j) =>
        `/** Item ${i}.${j}: returns the value of the entry. */ declare function get${i}x${j}(key: string): number;`,
    ).join('\n');
  const doc = await vscode.workspace.openTextDocument({
    language: 'typescript',
    content: Array.from({ length: 8 }, (_, i) => paragraph(i)).join('\n\n') + '\n',
  });
  const editor = await vscode.window.showTextDocument(doc, { preview: false });
  const run = vscode.commands.executeCommand('distillLens.analyzeDocument');
  await until(
    'the first part is painted before the run ends',
    () => (api.controller.get(doc.uri)?.placed.rows.length ?? 0) > 0,
    60_000,
  );
  const firstPartRows = api.controller.get(doc.uri)!.placed.rows.length;
  // typed at the top (inside the finished first part) and at the very end (inside a part still to come)
  await editor.edit((b) => b.insert(new vscode.Position(0, 0), '// typed while analysing\n'));
  await editor.edit((b) => b.insert(doc.positionAt(doc.getText().length), '// and at the end\n'));
  assert.ok(await run, api.controller.lastError);
  const rows = api.controller.get(doc.uri)!.placed.rows;
  assert.ok(rows.length > firstPartRows, 'the later parts were added');
  // the first part was finished when the line was typed above it: its tokens are stale; the
  // last part was analysed with what was typed at its end
  assert.ok(rows[0].stale, 'the first part is stale');
  assert.ok(!rows[rows.length - 1].stale, 'the last part is up to date');
  for (const r of rows)
    assert.equal(
      doc.getText(new vscode.Range(doc.positionAt(r.start), doc.positionAt(r.end))),
      r.row.text,
      'every token where its text is',
    );
  assert.ok(
    Math.max(...rows.map((r) => r.end)) >= doc.getText().trimEnd().length - 1,
    'the end, with what was typed there, is analysed',
  );
  await vscode.commands.executeCommand('workbench.action.revertAndCloseActiveEditor');
});

test('a bad model folder gives a clear error and keeps the previous analysis', async () => {
  const editor = await analysedSample();
  const rowsBefore = api.controller.get(editor.document.uri)!.placed.rows.length;
  const good = config().get<string>('teacher');
  await config().update('teacher', path.join(workspace, 'no-such-model'), vscode.ConfigurationTarget.Global);
  try {
    const result = await vscode.commands.executeCommand('distillLens.analyzeSelection');
    assert.equal(result, undefined);
    assert.match(
      api.controller.lastError ?? '',
      /^the teacher: model folder .*no-such-model does not exist \(setting distillLens\.teacher\)$/,
    );
    assert.equal(api.controller.get(editor.document.uri)!.placed.rows.length, rowsBefore);
  } finally {
    await config().update('teacher', good, vscode.ConfigurationTarget.Global);
  }
});

test('Run Distillation on the selection: live loss in the panel, the new student used, before/after per token', async () => {
  const editor = await openSample();
  const doc = editor.document;
  editor.selection = new vscode.Selection(doc.positionAt(0), doc.positionAt(doc.getText().length));
  assert.ok(await vscode.commands.executeCommand('distillLens.analyzeSelection'), 'analysed before');
  const student = config().get<string>('student')!;
  const out = path.join(workspace, 'distilled-student');
  try {
    const record = await vscode.commands.executeCommand<{
      lossCurve: unknown[];
      heldOut: { before: { fkl: number }; after: { fkl: number } };
    }>('distillLens.runDistillation', {
      data: { selection: true },
      loss: 'fkl',
      steps: 20,
      out,
      useResult: true,
    });
    assert.ok(record, `distillation ran (${api.controller.lastError ?? ''})`);
    assert.equal(record.lossCurve.length, 20);
    assert.ok(
      record.heldOut.after.fkl < record.heldOut.before.fkl,
      'the fine-tune lowered fkl on its own text',
    );
    const training = api.distillation.training!;
    assert.equal(training.status, 'done');
    assert.equal(training.points.length, 20, 'every step reached the panel');
    assert.ok(
      fs.existsSync(path.join(out, 'run.json')) && fs.existsSync(path.join(out, 'onnx', 'model.onnx')),
    );
    assert.equal(config().get('student'), out, 'the new student is used');
    const after = api.controller.get(doc.uri)!;
    assert.equal(after.settings.student, out);
    assert.equal(after.baseline?.settings.student, student, 'the previous analysis is kept as the baseline');
    await vscode.commands.executeCommand('distillLens.openPanel');
    await until(
      'the panel shows before/after',
      () => api.panel.state.baseline && api.panel.state.training === 'done',
    );
    // colour by change: the editor follows the setting, green where the metric fell, red where it rose
    await config().update('colorBy', 'change', vscode.ConfigurationTarget.Global);
    const painted = await until('the editor coloured by change', () => {
      const p = api.controller.decorations.painted.get(doc.uri.toString());
      return p?.coloring === 'change of fkl' ? p : undefined;
    });
    assert.ok(painted.tokens.every((t) => /^(fell|rose)[0-4]$|^same$|^unmatched$/.test(t.cls)));
    assert.ok(
      painted.tokens.some((t) => t.cls.startsWith('fell')),
      'some tokens fell',
    );
    assert.match(api.controller.statusBar.text, /Δfkl/);
    // pressed again (the notification's button after the panel's): nothing changes
    const analysed = api.controller.get(doc.uri);
    await api.distillation.useResult();
    assert.equal(api.controller.get(doc.uri), analysed, 'no second analysis');
    assert.equal(
      api.controller.get(doc.uri)!.baseline?.settings.student,
      student,
      'the baseline is still the old student',
    );
  } finally {
    await config().update('student', student, vscode.ConfigurationTarget.Global);
    await config().update('colorBy', undefined, vscode.ConfigurationTarget.Global);
  }
});

test('Run Distillation with an on-policy method: the student samples completions of prompts from the file, the panel gets the sampled numbers and the watched prompt before and after', async () => {
  const sampleDoc = (await openSample()).document;
  // the text before the cursor of cursorAfterFirstLine: the watched continuations must be those compared below
  const watch = sampleDoc.getText(new vscode.Range(new vscode.Position(0, 0), new vscode.Position(1, 0)));
  const out = path.join(workspace, 'onpolicy-student');
  const distill = vscode.workspace.getConfiguration('distillLens.distill');
  await distill.update('maxNewTokens', 8, vscode.ConfigurationTarget.Global);
  await distill.update('promptTokens', 12, vscode.ConfigurationTarget.Global);
  try {
    const record = await vscode.commands.executeCommand<{
      settings: { method: string };
      sampledHeldOut?: { before: { reverseKl: number }; after: { reverseKl: number } };
    }>('distillLens.runDistillation', {
      data: { currentFile: true },
      method: 'onpolicy',
      steps: 3,
      out,
      watch,
    });
    assert.ok(record, `distillation ran (${api.controller.lastError ?? ''})`);
    assert.equal(record.settings.method, 'onpolicy');
    assert.ok(record.sampledHeldOut && record.sampledHeldOut.before.reverseKl > 0);
    const rollouts = fs.readFileSync(path.join(out, 'rollouts.jsonl'), 'utf8').trim().split('\n');
    assert.equal(rollouts.length, 3 * 4, 'one completion per prompt of each batch');
    const training = api.distillation.training!;
    assert.equal(training.status, 'done');
    assert.ok(training.heldOut?.sampled, 'the panel gets the sampled numbers');
    assert.match(training.title, /^onpolicy/);
    assert.ok(
      training.points.length === 3 &&
        training.points.every((p) => Number.isFinite(p.reward) && Number.isFinite(p.kl)),
      'each step reports the reward of what the student wrote and its KL estimate',
    );
    // the student before and after the run continue the same text, side by side
    await cursorAfterFirstLine();
    const pair = await vscode.commands.executeCommand<{ before: string; after: string }>(
      'distillLens.compareBeforeAfter',
    );
    assert.ok(pair, 'compared');
    const before = api.continuations.get(vscode.Uri.parse(pair.before))!;
    const after = api.continuations.get(vscode.Uri.parse(pair.after))!;
    assert.deepEqual([before.status, after.status], ['done', 'done'], api.controller.lastError);
    assert.equal(before.settings.student, config().get('student'), 'the student before the run');
    assert.equal(after.settings.student, out, 'the distilled student');
    // the panel's watched prompt shows the same continuations, token by token, with their values
    const watched = training.watch!;
    assert.ok(watched.before && watched.after, `both watched continuations (${watched.message ?? ''})`);
    for (const [side, run] of [
      [watched.before, before],
      [watched.after, after],
    ] as const) {
      const sample = run.report!.samples[0];
      assert.equal(side.tokens.map((t) => t.text).join(''), sample.rows.map((r) => r.text).join(''));
      assert.deepEqual(
        side.tokens.map((t) => t.logRatio),
        sample.rows.map((r) => r.logRatio),
      );
      assert.equal(side.sequence.reverseKl, sample.sequence.reverseKl);
    }
    const diff = vscode.window.tabGroups.all
      .flatMap((g) => g.tabs)
      .find((t) => t.input instanceof vscode.TabInputTextDiff && t.input.modified.toString() === pair.after);
    assert.ok(diff && (diff.input as vscode.TabInputTextDiff).original.toString() === pair.before);
    await vscode.window.tabGroups.close(diff);
  } finally {
    await distill.update('maxNewTokens', undefined, vscode.ConfigurationTarget.Global);
    await distill.update('promptTokens', undefined, vscode.ConfigurationTarget.Global);
  }
});

test('Analyze Selection from the Welcome page acts on the sample the walkthrough opened', async () => {
  const editor = await vscode.commands.executeCommand<vscode.TextEditor>('distillLens.openSample');
  const sample = editor.document;
  // the walkthrough in front of the sample, as after pressing "Open the Sample Text"
  await vscode.commands.executeCommand(
    'workbench.action.openWalkthrough',
    'distill-lens.distill-lens#distillLens.firstRun',
    false,
  );
  await until('no text editor has focus', () => vscode.window.activeTextEditor === undefined);
  const result = await vscode.commands.executeCommand('distillLens.analyzeSelection');
  assert.ok(result, `analysed (${api.controller.lastError ?? ''})`);
  const stored = api.controller.get(sample.uri)!;
  assert.ok(stored, 'the analysis is of the sample');
  assert.ok(
    Math.max(...stored.placed.rows.map((r) => r.end)) >= sample.getText().trimEnd().length - 1,
    'all of it',
  );
});

/**
 * The editor's cursor after the first line of the sample: the continuation follows its doc
 * comment (the workspace's settings ask for 20 new tokens with seed 3).
 */
async function cursorAfterFirstLine(): Promise<vscode.TextEditor> {
  const editor = await openSample();
  const at = new vscode.Position(1, 0);
  editor.selection = new vscode.Selection(at, at);
  return editor;
}

/** The sampled tokens the CLI writes for this prompt with these settings (an independent run of the same engine). */
function cliSample(
  prompt: string,
  from: string,
  maxNewTokens = 20,
): { text: string; rows: { logRatio: number; text: string }[] }[] {
  const root = path.resolve(__dirname, '..');
  const promptFile = path.join(workspace, `.prompt-${from}.txt`);
  fs.writeFileSync(promptFile, prompt);
  const out = execFileSync(
    process.execPath,
    [
      path.join(root, 'bin', 'distill-lens.js'),
      'sample',
      '--teacher',
      config().get<string>('teacher')!,
      '--student',
      config().get<string>('student')!,
      '--prompt-file',
      promptFile,
      '--from',
      from,
      '--max-new-tokens',
      String(maxNewTokens),
      '--seed',
      '3',
      '--format',
      'json',
    ],
    { encoding: 'utf8', env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } },
  );
  fs.rmSync(promptFile);
  return JSON.parse(out).samples;
}

test('Continue with Student streams into a read-only document beside the editor, then paints each generated token by log p − log q', async () => {
  // long enough that the document is updated several times while sampling
  const sampling = vscode.workspace.getConfiguration('distillLens.sampling');
  await sampling.update('maxNewTokens', 200, vscode.ConfigurationTarget.Global);
  try {
    await continueWithStudent();
  } finally {
    await sampling.update('maxNewTokens', 20, vscode.ConfigurationTarget.Global);
  }
});

async function continueWithStudent(): Promise<void> {
  const editor = await cursorAfterFirstLine();
  const prompt = editor.document.lineAt(0).text + '\n';
  // the text the document would show at each change while sampling
  const streamed: number[] = [];
  const watch = api.continuations.onDidChange((run) => {
    if (run.status === 'sampling') streamed.push(run.layout.text.length);
  });
  const outcome = await vscode.commands.executeCommand<{
    document: string;
    status: string;
    tokens: number;
  }>('distillLens.continueWithStudent');
  watch.dispose();
  assert.ok(outcome, 'the command ran');
  assert.equal(outcome.status, 'done', api.controller.lastError);
  assert.ok(new Set(streamed).size >= 2, `the document grew while sampling (lengths ${streamed.join(', ')})`);
  const uri = vscode.Uri.parse(outcome.document);
  assert.equal(uri.scheme, 'distill-lens-sample');
  const run = api.continuations.get(uri)!;
  const doc = await until('the continuation document is open', () =>
    vscode.workspace.textDocuments.find(
      (d) => d.uri.toString() === outcome.document && d.getText() === run.layout.text,
    ),
  );
  const visible = vscode.window.visibleTextEditors.find((e) => e.document === doc);
  assert.ok(visible && visible.viewColumn !== editor.viewColumn, 'shown beside the editor');
  assert.equal(vscode.window.activeTextEditor?.document, editor.document, 'the focus stays in the editor');

  // the same tokens and log ratios as the CLI samples with the same settings
  const [expected] = cliSample(prompt, 'student', 200);
  assert.equal(doc.getText(), prompt + expected.text, 'the prompt, then the continuation');
  const rows = run.report!.samples[0].rows;
  assert.deepEqual(
    rows.map((r) => r.text),
    expected.rows.map((r) => r.text),
  );
  rows.forEach((r, i) =>
    assert.ok(Math.abs(r.logRatio - expected.rows[i].logRatio) < 1e-5, `log ratio of token ${i}`),
  );

  // painted: each token with text on its own text, green where log p > log q, red where less
  const painted = await until('the continuation is painted', () =>
    api.continuations.decorations.painted.get(outcome.document),
  );
  assert.ok(painted.tokens.length > 5);
  for (const t of painted.tokens) {
    const hit = run.placed.find((p) => p.start === t.start && p.end === t.end)!;
    const row = rows[hit.index];
    assert.equal(doc.getText(new vscode.Range(doc.positionAt(t.start), doc.positionAt(t.end))), row.text);
    assert.match(t.cls, row.logRatio > 0 ? /^fell\d$/ : /^rose\d$/, `token ${hit.index}: ${row.logRatio}`);
  }
  // the hover of a generated token: its sampled-token values and the usual metrics
  const first = run.placed[0];
  const hovers = await vscode.commands.executeCommand<vscode.Hover[]>(
    'vscode.executeHoverProvider',
    uri,
    doc.positionAt(first.start),
  );
  const text = hovers
    .flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : (c as vscode.MarkdownString).value)))
    .join('\n');
  assert.match(text, /\*\*Generated by the student\*\*/);
  assert.match(text, /log p − log q \(reward r_t\)/);
  assert.match(text, /Divergences/);
  // nothing on the prompt's text
  const onPrompt = await vscode.commands.executeCommand<vscode.Hover[]>(
    'vscode.executeHoverProvider',
    uri,
    doc.positionAt(3),
  );
  assert.equal(onPrompt.length, 0);

  // Export Report from the continuation document: the sample command's JSON, and its HTML page
  await vscode.window.showTextDocument(doc, { viewColumn: visible!.viewColumn });
  const jsonFile = vscode.Uri.file(path.join(workspace, 'continuation.json'));
  await vscode.commands.executeCommand('distillLens.exportReport', 'json', jsonFile);
  const exported = JSON.parse(fs.readFileSync(jsonFile.fsPath, 'utf8'));
  assert.equal(exported.from, 'student');
  assert.equal(exported.samples[0].text, expected.text);
  assert.equal(exported.samples[0].rows.length, rows.length);
  const htmlFile = vscode.Uri.file(path.join(workspace, 'continuation.html'));
  await vscode.commands.executeCommand('distillLens.exportReport', 'html', htmlFile);
  assert.match(fs.readFileSync(htmlFile.fsPath, 'utf8'), /Distill Lens: sampled continuations/);

  // the panel shows the continuation when its document is active
  await vscode.commands.executeCommand('distillLens.openPanel');
  await until('the panel shows the continuations', () => api.panel.state.samples === outcome.document);
}

test('Compare Continuations: the teacher and the student from the same seed side by side in the diff editor, both painted', async () => {
  try {
    const editor = await cursorAfterFirstLine();
    const prompt = editor.document.lineAt(0).text + '\n';
    const outcome = await vscode.commands.executeCommand<{ document: string; status: string }[]>(
      'distillLens.compareContinuations',
    );
    assert.ok(outcome && outcome.length === 2, api.controller.lastError);
    assert.deepEqual(
      outcome.map((o) => o.status),
      ['done', 'done'],
      api.controller.lastError,
    );
    const [teacherUri, studentUri] = outcome.map((o) => vscode.Uri.parse(o.document));
    const diff = vscode.window.tabGroups.all
      .flatMap((g) => g.tabs)
      .find(
        (t) =>
          t.input instanceof vscode.TabInputTextDiff && t.input.modified.toString() === studentUri.toString(),
      );
    assert.ok(diff, 'a diff editor is open');
    const input = diff.input as vscode.TabInputTextDiff;
    assert.equal(input.original.toString(), teacherUri.toString(), 'the teacher on the left');
    assert.equal(input.modified.toString(), studentUri.toString(), 'the student on the right');
    // each side as the CLI samples it with the same seed
    for (const [uri, from] of [
      [teacherUri, 'teacher'],
      [studentUri, 'student'],
    ] as const) {
      const run = api.continuations.get(uri)!;
      assert.equal(run.from, from);
      assert.equal(run.layout.text, prompt + cliSample(prompt, from)[0].text, `the ${from}'s continuation`);
      await until(
        `the ${from}'s side is painted`,
        () => api.continuations.decorations.painted.get(uri.toString())?.tokens.length,
      );
    }
  } finally {
    for (const tab of vscode.window.tabGroups.all.flatMap((g) => g.tabs))
      if (tab.input instanceof vscode.TabInputTextDiff) await vscode.window.tabGroups.close(tab);
  }
});

test('Cancel while sampling: the streamed text stays in its document, neither scored nor painted', async () => {
  const sampling = vscode.workspace.getConfiguration('distillLens.sampling');
  // the workspace's 20 tokens come back afterwards
  const restore = async () => {
    await sampling.update('samples', undefined, vscode.ConfigurationTarget.Global);
    await sampling.update('maxNewTokens', 20, vscode.ConfigurationTarget.Global);
  };
  await sampling.update('maxNewTokens', 4096, vscode.ConfigurationTarget.Global);
  await sampling.update('samples', 16, vscode.ConfigurationTarget.Global);
  try {
    await cursorAfterFirstLine();
    // what the notification's Cancel button does, once the first tokens are in the document
    const abort = new AbortController();
    const watch = api.continuations.onDidChange((r) => {
      if (r.status === 'sampling' && r.streamedTokens > 0) abort.abort();
    });
    const run = (await api.continuations.continueWith('student', abort.signal))!;
    watch.dispose();
    assert.equal(run.status, 'cancelled');
    assert.equal(run.report, undefined, 'nothing scored');
    assert.ok(run.streamedTokens > 0);
    const doc = await until('the document shows what streamed', () =>
      vscode.workspace.textDocuments.find(
        (d) => d.uri.toString() === run.uri.toString() && d.getText() === run.layout.text,
      ),
    );
    assert.match(doc.getText(), /continuation 16 of 16/);
    assert.equal(api.continuations.decorations.painted.get(run.uri.toString())?.tokens.length ?? 0, 0);
    // the model process is free again: the next continuation runs to the end
    await restore();
    await cursorAfterFirstLine();
    assert.equal((await api.continuations.continueWith('teacher'))?.status, 'done');
  } finally {
    await restore();
  }
});

test('Continue with Student at the very start of a document says there is nothing to continue', async () => {
  const editor = await openSample();
  editor.selection = new vscode.Selection(0, 0, 0, 0);
  assert.equal(await vscode.commands.executeCommand('distillLens.continueWithStudent'), undefined);
});

test('Clear removes the decorations', async () => {
  const editor = await analysedSample();
  await vscode.commands.executeCommand('distillLens.clear');
  assert.equal(api.controller.get(editor.document.uri), undefined);
  assert.equal(api.controller.decorations.painted.get(editor.document.uri.toString())?.tokens.length, 0);
});

export async function run(): Promise<void> {
  let passed = 0;
  let failed = 0;
  const only = process.env.DISTILL_LENS_TEST_FILTER
    ? new RegExp(process.env.DISTILL_LENS_TEST_FILTER)
    : undefined;
  for (const [i, t] of tests.entries()) {
    if (only && i > 0 && !only.test(t.name)) continue;
    try {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        t.fn(),
        new Promise(
          (_, reject) => (timer = setTimeout(() => reject(new Error('timed out after 90 s')), 90_000)),
        ),
      ]);
      clearTimeout(timer);
      passed++;
      console.log(`ok ${i + 1} - ${t.name}`);
    } catch (e) {
      failed++;
      console.log(`not ok ${i + 1} - ${t.name}`);
      console.log(
        `# ${String((e as Error).stack ?? e)
          .split('\n')
          .join('\n# ')}`,
      );
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  if (failed > 0) throw new Error(`${failed} extension tests failed`);
}
