/**
 * Run Distillation…: asks for the data, the loss (or a sequence-level method: SeqKD, GKD,
 * on-policy, MiniLLM), a prompt to watch and the number of steps (the rest from settings),
 * runs the fine-tune in the model process with a cancellable progress notification and a
 * live chart in the panel (loss; reward and KL for the sampling methods), shows the
 * student's continuation of the watched prompt before and after, then offers to use the new
 * student and analyse the same text again, so the panel shows per token what changed.
 */
import { parseServedTeacher } from '../models/servedTeacher';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { builtInPair } from '../models/builtInModels';
import * as vscode from 'vscode';
import { CancelledError } from '../core/errors';
import { formatNumber } from '../core/formatNumber';
import type { TrainingView } from '../shared/panelProtocol';
import type { SampleReport } from '../shared/generation';
import { logRatioScale, watchedContinuation } from '../report/continuationDocument';
import { stageBoundaries } from '../core/stages';
import type { AnalysisController } from './analysisController';
import type { ContinuationController } from './continuations';
import type { RuntimeHost } from './runtimeHost';
import { readDistillSettings, readSettings } from './settings';
import {
  LOSS_KEYS,
  type DistillMethod,
  type DistillRequest,
  type LossKey,
  type RunRecord,
} from '../shared/protocol';

const LOSS_DESCRIPTIONS: Record<LossKey, string> = {
  fkl: 'forward KL, classic word-level KD',
  rkl: 'reverse KL (MiniLLM)',
  jeffreys: '½ (forward + reverse KL)',
  jsd: 'Jensen–Shannon',
  gjsd: "generalised JSD with β (TRL's GKD)",
  tvd: 'total variation',
  skl: 'skew KL with α (DistiLLM)',
  srkl: 'skew reverse KL with α (DistiLLM)',
  akl: 'adaptive KL, head/tail weighted (Wu et al. 2024)',
  dkd: 'decoupled KD: α·tckd + β·nckd, × T²',
  atkd: 'adaptive teaching KD (easy/hard tokens)',
  ce: 'cross-entropy on the text only (plain fine-tune)',
};

/** The loss for a teacher whose tokenizer differs, offered beside the others. */
const ULD_CHOICE = {
  label: 'uld',
  description: 'Universal Logit Distillation + ce: for a teacher whose tokenizer differs (1.5·ULD + ce)',
} as const;

/** What Run Distillation… trains a word-level run on: a loss of one vocabulary, or ULD across tokenizers. */
type WordLoss = LossKey | 'uld';

/** Characters before the cursor offered as the prompt to watch at most. */
const WATCH_CHARS = 400;

/** The methods that sample completions, as Run Distillation… offers them beside the word-level losses. */
const SEQUENCE_METHODS: { method: Exclude<DistillMethod, 'word'>; label: string; description: string }[] = [
  {
    method: 'seqkd',
    label: 'SeqKD',
    description: "sequence-level KD: ce on the teacher's completions of the prompts",
  },
  {
    method: 'gkd',
    label: 'GKD',
    description: "TRL's GKD: λ-mixed student / teacher completions, generalised JSD",
  },
  {
    method: 'onpolicy',
    label: 'On-policy',
    description: "the student's own completions, advantage log p − log q",
  },
  {
    method: 'minillm',
    label: 'MiniLLM',
    description: 'teacher-mixed sampling, PPO with the single-step reverse KL',
  },
];

/** Arguments that skip the questions (tests, keybindings). */
export interface DistillArgs {
  data?: { selection: true } | { currentFile: true } | { path: string };
  /** a sequence-level method instead of a word-level loss */
  method?: DistillMethod;
  loss?: WordLoss;
  steps?: number;
  out?: string;
  /** switch to the new student and re-analyse without asking */
  useResult?: boolean;
  /** a prompt whose continuation by the student the panel shows before and after ('' for none) */
  watch?: string;
  /** word-level losses: feature distillation on auto-mapped layers, and whether in two stages (kd, then kd+features) */
  feature?: { loss: 'mse' | 'cosine'; twoStages?: boolean } | null;
}

export class DistillationRunner implements vscode.Disposable {
  private view: TrainingView | null = null;
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  /** the last finished run: its output folder and the analysis to compare against */
  /** the last finished run; `used` once its folder became the student and the text was re-analysed */
  last?: { out: string; record: RunRecord; document?: vscode.Uri; used?: boolean };
  /** a Use as Student is in progress (a second press while it runs is a no-op too) */
  private usingResult = false;
  running = false;

  constructor(
    private readonly controller: AnalysisController,
    private readonly runtime: RuntimeHost,
    private readonly continuations: ContinuationController,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  /**
   * The last run's student before and after, continuing the text before the cursor from one
   * seed, side by side in the diff editor.
   */
  async compareBeforeAfter(): Promise<{ before: string; after: string } | undefined> {
    const last = this.last;
    if (!last) {
      vscode.window.showWarningMessage('Distill Lens: no distillation has finished in this window yet.');
      return undefined;
    }
    const pair = await this.continuations.compareStudents(last.record.student, last.out);
    return pair && { before: pair.before.uri.toString(), after: pair.after.uri.toString() };
  }

  get training(): TrainingView | null {
    return this.view;
  }

  private show(v: TrainingView | null): void {
    this.view = v;
    this.changed.fire();
  }

  async run(args: DistillArgs = {}): Promise<RunRecord | undefined> {
    if (this.running) {
      vscode.window.showWarningMessage('Distill Lens: a distillation is already running.');
      return undefined;
    }
    const settings = readSettings();
    const ds = readDistillSettings();
    if (!settings.teacher || !settings.student) {
      void vscode.window
        .showErrorMessage(
          `Distill Lens: choose a teacher and a student first.`,
          'Choose Teacher…',
          'Choose Student…',
        )
        .then((pick) => {
          if (pick)
            void vscode.commands.executeCommand(
              pick === 'Choose Teacher…' ? 'distillLens.chooseTeacher' : 'distillLens.chooseStudent',
            );
        });
      return undefined;
    }
    if (!fs.existsSync(settings.student) || !fs.statSync(settings.student).isDirectory()) {
      void vscode.window
        .showErrorMessage(
          `Distill Lens: distillation trains a local checkpoint folder (config.json + model.safetensors); the student "${settings.student}" is not a local folder.`,
          'Choose Student…',
        )
        .then((pick) => {
          if (pick) void vscode.commands.executeCommand('distillLens.chooseStudent');
        });
      return undefined;
    }
    const editor = vscode.window.activeTextEditor;
    const data = args.data ?? (await this.askData(editor));
    if (!data) return undefined;
    const choice =
      args.method || args.loss
        ? { method: args.method ?? 'word', loss: args.loss }
        : await this.askMethod(ds.loss);
    if (!choice) return undefined;
    const method: DistillMethod = choice.method;
    // the word-level losses of one vocabulary can add feature distillation (asked in the interactive flow only)
    const feature =
      method !== 'word' || choice.loss === 'uld'
        ? null
        : args.feature !== undefined
          ? args.feature
          : args.data
            ? null
            : await this.askFeature();
    if (feature === undefined) return undefined;
    // the loss each method trains on: seqkd ce, gkd generalised JSD at T = 1; the on-policy
    // methods have their own (the request's loss is not used)
    const loss: WordLoss = choice.loss ?? (method === 'gkd' ? 'gjsd' : method === 'word' ? 'fkl' : 'ce');
    // asked in the interactive flow only: commands given their data from code run as told
    const watch = args.watch ?? (args.data ? '' : await this.askWatch(editor));
    if (watch === undefined) return undefined;
    const steps = args.steps ?? (await this.askSteps(ds.steps));
    if (!steps) return undefined;
    const label = method === 'word' ? loss : method;
    const out = args.out ?? (await this.askOut(settings.student, label));
    if (!out) return undefined;

    let documents: DistillRequest['data'];
    if ('path' in data) documents = { path: data.path };
    else if (!editor) {
      vscode.window.showWarningMessage('Distill Lens: open a text editor first.');
      return undefined;
    } else if ('selection' in data) {
      const texts = editor.selections.filter((s) => !s.isEmpty).map((s) => editor.document.getText(s));
      if (texts.length === 0) {
        vscode.window.showWarningMessage('Distill Lens: select the text to train on first.');
        return undefined;
      }
      documents = {
        documents: texts.map((text, i) => ({
          source: `${editor.document.uri.path.split('/').pop()} selection ${i + 1}`,
          text,
        })),
      };
    } else
      documents = {
        documents: [
          {
            source: editor.document.uri.path.split('/').pop() ?? 'document',
            text: editor.document.getText(),
          },
        ],
      };

    const request: DistillRequest = {
      teacher: settings.teacher,
      // a served teacher: its key from the secret storage (its top K: --teacher-top-k's default)
      ...(parseServedTeacher(settings.teacher)
        ? { teacherApiKey: await this.controller.servedTeacherKey() }
        : {}),
      student: settings.student,
      data: documents,
      method,
      // ULD's cross-entropy term is the ce loss (at T = 1); its distance term comes with `uld`
      ...(loss === 'uld' ? { uld: {} } : {}),
      loss: {
        key: loss === 'uld' ? 'ce' : loss,
        // GKD's loss is at T = 1 (TRL)
        temperature: method === 'gkd' || loss === 'uld' ? 1 : settings.options.temperature,
        ...(loss === 'gjsd' ? { beta: settings.options.beta } : {}),
        ...(loss === 'skl' || loss === 'srkl' ? { alpha: settings.options.alpha } : {}),
      },
      ...(method !== 'word'
        ? { generation: { maxNewTokens: ds.maxNewTokens, promptTokens: ds.promptTokens } }
        : {}),
      mode:
        ds.mode === 'full' ? { kind: 'full' } : { kind: 'lora', rank: ds.loraRank, alpha: 2 * ds.loraRank },
      steps,
      lr: ds.learningRate,
      ...(feature
        ? {
            feature: { loss: feature.loss, layers: 'auto' as const, weight: ds.featureWeight },
            ...(feature.twoStages
              ? {
                  stages: [
                    { kind: 'kd' as const, steps: Math.ceil(steps / 2) },
                    { kind: 'kd+features' as const, steps: steps - Math.ceil(steps / 2) },
                  ].filter((st) => st.steps > 0),
                }
              : {}),
          }
        : {}),
      batchSize: ds.batchSize,
      // a prompt and its completion share one window in the sequence-level methods
      seqLen:
        method === 'word'
          ? ds.sequenceLength
          : Math.max(ds.sequenceLength, ds.promptTokens + ds.maxNewTokens + 8),
      seed: 0,
      device: settings.device,
      teacherDtype: settings.dtype,
      out,
      allowRemote: settings.allowRemoteModels,
      hubCacheDir: settings.hubCacheDir,
    };
    const title = `${label} · ${ds.mode === 'full' ? 'full fine-tune' : `LoRA r${ds.loraRank}`} · ${steps} steps`;
    const view: TrainingView = {
      status: 'running',
      title,
      steps,
      points: [],
      message: 'starting',
      ...(watch ? { watch: { prompt: watch } } : {}),
      ...(request.stages ? { stages: stageBoundaries(request.stages) } : {}),
    };
    this.show(view);
    void vscode.commands.executeCommand('distillLens.openPanel');
    this.running = true;
    const compareWith = editor?.document.uri;
    try {
      const record = await vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: `Distill Lens: distilling (${title})`,
          cancellable: true,
        },
        async (progress, token) => {
          const abort = new AbortController();
          token.onCancellationRequested(() => abort.abort());
          let lastFraction = 0;
          let lastPost = 0;
          const before = await this.watchContinuation(
            view,
            settings.student,
            'before',
            abort.signal,
            progress,
          );
          const record = await this.runtime.get().distill(request, {
            signal: abort.signal,
            onProgress: (message, fraction, training) => {
              if (training?.step !== undefined && training.loss !== undefined) {
                view.points.push({
                  step: training.step,
                  loss: training.loss,
                  ...(training.reward !== undefined ? { reward: training.reward } : {}),
                  ...(training.kl !== undefined ? { kl: training.kl } : {}),
                });
                view.message = `step ${training.step}/${training.steps} · loss ${formatNumber(training.loss)} · ${Math.round(training.tokensPerSecond ?? 0)} tokens/s · ${Math.round(training.secondsLeft ?? 0)} s left`;
              } else view.message = message;
              const increment = fraction !== undefined ? Math.max(0, (fraction - lastFraction) * 100) : 0;
              if (fraction !== undefined) lastFraction = fraction;
              progress.report({ message: view.message, increment });
              // the chart redraws at most five times a second
              if (performance.now() - lastPost > 200 || training?.step === training?.steps) {
                lastPost = performance.now();
                this.show(view);
              }
            },
          });
          await this.watchContinuation(view, out, 'after', abort.signal, progress, before);
          return record;
        },
      );
      view.status = 'done';
      view.heldOut = {
        before: record.heldOut.before,
        after: record.heldOut.after,
        ...(record.sampledHeldOut
          ? { sampled: { before: record.sampledHeldOut.before, after: record.sampledHeldOut.after } }
          : {}),
        ...(record.heldOut.teacherSupport ? { teacherSupport: record.heldOut.teacherSupport } : {}),
      };
      view.out = out;
      const percent = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
      const { before, after } = record.heldOut;
      view.message =
        after.uld !== undefined
          ? // across tokenizers: no per-token KL
            `held-out ULD across tokenizers (an approximation) ${formatNumber(before.uld!)} → ${formatNumber(after.uld)} (${percent(record.heldOut.uldChange!)})`
          : `held-out forward KL${record.heldOut.teacherSupport ? ` over the served teacher's ${record.heldOut.teacherSupport} buckets` : ''} ${formatNumber(before.fkl)} → ${formatNumber(after.fkl)} (${percent(record.heldOut.fklChange)})`;
      this.show(view);
      this.last = { out, record, document: compareWith };
      this.log.info(`distillation written to ${out}: ${view.message}`);
      for (const m of record.messages) this.log.warn(m);
      if (args.useResult) await this.useResult();
      else {
        void vscode.window
          .showInformationMessage(
            `Distill Lens: ${view.message}. New student: ${out}`,
            'Use as Student and Re-analyse',
            'Compare Continuations Before / After',
            'Open run.json',
          )
          .then((pick) => {
            if (pick === 'Use as Student and Re-analyse') void this.useResult();
            else if (pick === 'Compare Continuations Before / After') void this.compareBeforeAfter();
            else if (pick === 'Open run.json')
              void vscode.window.showTextDocument(vscode.Uri.file(path.join(out, 'run.json')));
          });
      }
      return record;
    } catch (e) {
      const cancelled = e instanceof CancelledError;
      view.status = cancelled ? 'cancelled' : 'failed';
      view.message = cancelled ? 'cancelled: no model was written' : (e as Error).message;
      this.show(view);
      if (cancelled) this.log.info('distillation cancelled');
      else this.controller.reportError(e);
      return undefined;
    } finally {
      this.running = false;
    }
  }

  /**
   * The watched prompt's continuation by `student` (before or after the run), scored by the
   * teacher, into the view; `earlier` (the one before) is recoloured so that both share one
   * scale. A failure is said in the view and does not stop the run; Cancel does.
   */
  private async watchContinuation(
    view: TrainingView,
    student: string,
    when: 'before' | 'after',
    signal: AbortSignal,
    progress: vscode.Progress<{ message?: string }>,
    earlier?: SampleReport,
  ): Promise<SampleReport | undefined> {
    const watch = view.watch;
    if (!watch) return undefined;
    const who = when === 'before' ? "the student's" : "the distilled student's";
    watch.message = `sampling ${who} continuation of the watched prompt`;
    this.show(view);
    try {
      const report = await this.continuations.sampleOnce(watch.prompt, student, signal, (m) =>
        progress.report({ message: `watched prompt, ${when}: ${m}` }),
      );
      const reports = earlier ? [earlier, report] : [report];
      const scale = logRatioScale(reports);
      if (earlier) watch.before = watchedContinuation(earlier, scale);
      watch[when] = watchedContinuation(report, scale);
      watch.message = undefined;
      this.show(view);
      return report;
    } catch (e) {
      if (e instanceof CancelledError && when === 'before') throw e;
      watch.message = `${who} continuation is missing: ${e instanceof CancelledError ? 'cancelled' : (e as Error).message}`;
      this.log.warn(watch.message);
      this.show(view);
      return undefined;
    }
  }

  /** Sets the last run's output as the student and analyses the compared text again. */
  async useResult(): Promise<void> {
    const last = this.last;
    if (!last) {
      vscode.window.showWarningMessage('Distill Lens: no distillation has finished in this window yet.');
      return;
    }
    // a second press (panel button, then the notification's) changes nothing: the comparison
    // with the student before the run is already there, and must not become one with itself
    if (last.used || this.usingResult) {
      vscode.window.showInformationMessage(
        `Distill Lens: ${last.out} is already the student; the panel compares it with the student before the run.`,
      );
      return;
    }
    this.usingResult = true;
    try {
      await this.switchToResult(last);
      last.used = true;
    } finally {
      this.usingResult = false;
    }
  }

  private async switchToResult(last: NonNullable<DistillationRunner['last']>): Promise<void> {
    await vscode.workspace
      .getConfiguration('distillLens')
      .update('student', last.out, vscode.ConfigurationTarget.Global);
    if (this.view?.out === last.out) {
      this.view.used = true;
      this.show(this.view);
    }
    const editor = last.document
      ? (vscode.window.visibleTextEditors.find(
          (e) => e.document.uri.toString() === last.document!.toString(),
        ) ?? vscode.window.activeTextEditor)
      : vscode.window.activeTextEditor;
    const before = editor && this.controller.get(editor.document.uri);
    if (!editor || !before) {
      vscode.window.showInformationMessage(
        `Distill Lens: the student is now ${last.out}. Analyse some text to see it.`,
      );
      return;
    }
    await this.controller.reanalyze(editor, before);
  }

  private async askData(editor: vscode.TextEditor | undefined): Promise<DistillArgs['data']> {
    type Item = vscode.QuickPickItem & { pick: 'selection' | 'file' | 'folder' | 'jsonl' };
    const items: Item[] = [];
    const hasSelection = editor?.selections.some((s) => !s.isEmpty);
    if (hasSelection)
      items.push({
        label: '$(selection) The selection',
        description: `${editor!.selections.filter((s) => !s.isEmpty).reduce((n, s) => n + editor!.document.getText(s).length, 0)} characters`,
        pick: 'selection',
      });
    if (editor)
      items.push({
        label: '$(file) The current file',
        description: editor.document.uri.path.split('/').pop(),
        pick: 'file',
      });
    items.push(
      { label: '$(folder) A folder of text or code files…', pick: 'folder' },
      {
        label: '$(json) A JSONL file…',
        description: '{"text"} or {"prompt", "completion"} records',
        pick: 'jsonl',
      },
    );
    const choice = await vscode.window.showQuickPick(items, {
      title: 'Distill Lens: train on which text? (1/5)',
      placeHolder: 'the data the student learns the teacher on',
    });
    if (!choice) return undefined;
    if (choice.pick === 'selection') return { selection: true };
    if (choice.pick === 'file') return { currentFile: true };
    const uris = await vscode.window.showOpenDialog(
      choice.pick === 'folder'
        ? {
            canSelectFolders: true,
            canSelectFiles: false,
            openLabel: 'Train on this folder',
            title: 'Distill Lens: training data folder',
          }
        : {
            canSelectFolders: false,
            canSelectFiles: true,
            filters: { JSONL: ['jsonl'] },
            openLabel: 'Train on this file',
            title: 'Distill Lens: training data (JSONL)',
          },
    );
    return uris?.[0] ? { path: uris[0].fsPath } : undefined;
  }

  /** A word-level loss (the default from settings first), or a method that samples completions. */
  private async askMethod(
    preferred: string,
  ): Promise<{ method: DistillMethod; loss?: WordLoss } | undefined> {
    type Item = vscode.QuickPickItem & { method?: DistillMethod; loss?: WordLoss };
    const keys = [...LOSS_KEYS].sort((a, b) => Number(b === preferred) - Number(a === preferred));
    const items: Item[] = [
      { label: 'word-level: the text, teacher-forced', kind: vscode.QuickPickItemKind.Separator },
      ...keys.map((k) => ({ label: k, description: LOSS_DESCRIPTIONS[k], method: 'word' as const, loss: k })),
      { ...ULD_CHOICE, method: 'word' as const, loss: 'uld' as const },
      { label: 'sequence-level: sampled completions of prompts', kind: vscode.QuickPickItemKind.Separator },
      ...SEQUENCE_METHODS.map((m) => ({ label: m.label, description: m.description, method: m.method })),
    ];
    const pick = await vscode.window.showQuickPick(items, {
      title: 'Distill Lens: loss or method (2/5)',
      placeHolder: `default from distillLens.distill.loss: ${preferred}; the sequence-level methods take prompts from the text`,
    });
    return pick?.method ? { method: pick.method, loss: pick.loss } : undefined;
  }

  /** Feature distillation beside a word-level loss: none, MSE or cosine on auto-mapped layers, or two stages. */
  private async askFeature(): Promise<DistillArgs['feature'] | undefined> {
    type Item = vscode.QuickPickItem & { feature: DistillArgs['feature'] };
    const items: Item[] = [
      { label: 'The logit loss only', feature: null },
      {
        label: '+ feature loss (MSE)',
        description: 'student layer j ↔ teacher layer round(j·L_T/L_S), through trained projections',
        feature: { loss: 'mse' },
      },
      {
        label: '+ feature loss (cosine)',
        description: '1 − cosine instead of MSE',
        feature: { loss: 'cosine' },
      },
      {
        label: 'Two stages: the logit loss, then logit + feature (MSE)',
        description: 'half the steps each',
        feature: { loss: 'mse', twoStages: true },
      },
    ];
    const pick = await vscode.window.showQuickPick(items, {
      title: 'Distill Lens: feature distillation? (hidden states; both models must be checkpoint folders)',
      placeHolder: 'weight from distillLens.distill.featureWeight',
    });
    return pick ? pick.feature : undefined;
  }

  /**
   * A prompt whose continuation the panel shows before and after the run: the text before
   * the cursor (its last lines, up to WATCH_CHARS characters) is offered; empty for none.
   */
  private async askWatch(editor: vscode.TextEditor | undefined): Promise<string | undefined> {
    let suggested = '';
    if (editor) {
      const doc = editor.document;
      const end = doc.offsetAt(editor.selection.active);
      const text = doc.getText(
        new vscode.Range(doc.positionAt(Math.max(0, end - WATCH_CHARS)), doc.positionAt(end)),
      );
      const cut = end > WATCH_CHARS ? text.indexOf('\n') + 1 : 0;
      suggested = text.slice(cut).trim() ? text.slice(cut) : '';
    }
    return vscode.window.showInputBox({
      title: 'Distill Lens: a prompt to watch (3/5)',
      value: suggested,
      prompt:
        "The panel shows the student's continuation of this text before and after the run (distillLens.sampling settings), painted by log p − log q. Empty: watch nothing.",
    });
  }

  private async askSteps(preferred: number): Promise<number | undefined> {
    const v = await vscode.window.showInputBox({
      title: 'Distill Lens: training steps (4/5)',
      value: String(preferred),
      prompt:
        'Each step trains on a batch of windows (distillLens.distill.batchSize × sequenceLength tokens).',
      validateInput: (s) =>
        /^\d+$/.test(s.trim()) && Number(s) >= 1 ? undefined : 'a whole number of steps, at least 1',
    });
    return v ? Number(v.trim()) : undefined;
  }

  private async askOut(student: string, loss: string): Promise<string | undefined> {
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    // beside the student; the built-in student lives inside the extension, so its runs go to the workspace (or home)
    const builtIn = path.resolve(student) === path.resolve(builtInPair().student);
    const base = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? os.homedir();
    const suggested = builtIn
      ? path.join(base, 'distill-lens-models', `demo-student-${loss}-${stamp}`)
      : `${student.replace(/[\\/]+$/, '')}-distilled-${loss}-${stamp}`;
    const v = await vscode.window.showInputBox({
      title: 'Distill Lens: where to write the distilled student (5/5)',
      value: suggested,
      prompt: 'A new folder; the input models are never changed.',
      validateInput: (s) => {
        const dir = s.trim();
        if (!dir) return 'a folder path';
        if (!fs.existsSync(dir)) return undefined;
        return !fs.statSync(dir).isDirectory() || fs.readdirSync(dir).length > 0
          ? 'this exists and is not an empty folder: choose a new one'
          : undefined;
      },
    });
    return v?.trim() || undefined;
  }

  dispose(): void {
    this.changed.dispose();
  }
}
