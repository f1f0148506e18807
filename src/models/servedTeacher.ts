/**
 * A teacher served by an inference engine over HTTP (vLLM, SGLang), for teachers too large for
 * this machine. It gives, per prompt position, the log-probabilities of its K most probable
 * next tokens and of the actual one, never the full distribution: the metrics are then over
 * buckets (core/bucketedRows.ts) and labelled so.
 *
 *   spec      openai+http://host:8000/v1#model-name  (or https)
 *   vLLM      POST {base}/completions  {prompt: ids, max_tokens: 1, prompt_logprobs: K}
 *               → choices[0].prompt_logprobs: [null, {"id": {logprob, rank, decoded_token}}, …]
 *               (each position lists its top K and the actual token, with the actual's rank)
 *             POST {root}/tokenize {prompt: text} → {tokens: ids}  (the tokenizer check)
 *   SGLang    POST {root}/generate {input_ids, return_logprob: true, logprob_start_len: 0,
 *               top_logprobs_num: K, sampling_params: {max_new_tokens: 1}}
 *               → meta_info.input_token_logprobs [[logprob, id, text], …] (the first null),
 *                 meta_info.input_top_logprobs [null, [[logprob, id, text], …], …]
 *             the same with {text} gives the server's ids of a text (the tokenizer check)
 *   OpenAI    (legacy completions, where a server offers only that) POST {base}/completions
 *               {prompt: ids, max_tokens: 0, echo: true, logprobs: K} → choices[0].logprobs:
 *               {tokens, token_logprobs: [null, …], top_logprobs: [null, {token: logprob}, …]};
 *               tokens are "token_id:N" (vLLM's return_tokens_as_token_ids) or their text, read
 *               back to ids through the student's tokenizer: a text that several ids share, or
 *               none, is left out of the listed tokens (its mass stays in the rest, for both
 *               models alike, so the buckets are still exact); the actual token's rank is unknown
 *   sampling  (SeqKD) vLLM: POST {base}/completions {prompt: ids, max_tokens, temperature, top_k,
 *               top_p, min_p, repetition_penalty, seed, logprobs: 0,
 *               return_tokens_as_token_ids: true} → choices[0].logprobs.tokens ["token_id:N", …]
 *             SGLang: POST {root}/generate {input_ids, sampling_params: {…, sampling_seed},
 *               return_logprob: true} → meta_info.output_token_logprobs [[logprob, id, text], …]
 *
 * The API key comes from the environment (DISTILL_LENS_TEACHER_API_KEY) or the editor's secret
 * storage, never from a settings file. Rate limits (429, with Retry-After) and dropped
 * connections are retried with back-off; a refused connection, a refused key or an answer of
 * the wrong shape is said at once, by what it is.
 */
import { CancelledError, ModelLoadError } from '../core/errors';
import type { ServedTeacherRow } from '../core/bucketedRows';
import type { SamplingOptions } from '../shared/generation';

/** One completion the server sampled: its token ids, and whether it stopped (an EOS) or ran out. */
export interface ServedCompletion {
  ids: number[];
  finish: 'stop' | 'length';
}

export const TEACHER_API_KEY_ENV = 'DISTILL_LENS_TEACHER_API_KEY';

export interface ServedTeacherSpec {
  /** the OpenAI-compatible base URL, ending in /v1 */
  baseUrl: string;
  model: string;
}

/** `openai+http://host:port/v1#model` → its base URL and model; undefined for anything else. */
export function parseServedTeacher(spec: string): ServedTeacherSpec | undefined {
  const m = /^openai\+(https?:\/\/[^#\s]+)#(.+)$/.exec(spec.trim());
  if (!m) return undefined;
  return { baseUrl: m[1].replace(/\/+$/, ''), model: m[2] };
}

export type ServedProtocol = 'vllm' | 'sglang' | 'openai';

export const PROTOCOL_NAMES: Record<ServedProtocol, string> = {
  vllm: "vLLM's prompt_logprobs",
  sglang: "SGLang's /generate with return_logprob",
  openai: "the OpenAI completions API's echo with logprobs",
};

/** How the legacy protocol's token texts are read back to ids: the student's tokenizer. */
export interface TokenTexts {
  vocabSize: number;
  tokenText(id: number): string;
}

export interface ServedTeacherOptions {
  apiKey?: string;
  /** retries of a rate-limited or dropped request (default 5) */
  retries?: number;
  /** the first back-off in ms, doubled each retry (default 500); Retry-After wins when given */
  backoffMs?: number;
  /** the longest wait for one answer in ms (default 120 000) */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** the student's tokenizer, to read the legacy protocol's token texts (when it sends texts) */
  tokenizer?: TokenTexts;
}

/** An answer that is not worth repeating: the request or the server is wrong. */
class Refused extends Error {}

export class ServedTeacher {
  protocol?: ServedProtocol;
  private readonly root: string;

  constructor(
    readonly spec: ServedTeacherSpec,
    private readonly o: ServedTeacherOptions = {},
  ) {
    // the engines' own routes (/tokenize, /generate) live beside /v1
    this.root = spec.baseUrl.replace(/\/v1$/, '');
  }

  get name(): string {
    return `${this.spec.model} at ${this.spec.baseUrl}`;
  }

  /** Finds which protocol the server answers (vLLM's, SGLang's, then the legacy echo), and remembers it. */
  async detect(): Promise<ServedProtocol> {
    if (this.protocol) return this.protocol;
    const probe = [1, 2];
    for (const protocol of ['vllm', 'sglang', 'openai'] as const) {
      try {
        const rows = await this.ask(protocol, probe, 1);
        if (rows.length === 1) return (this.protocol = protocol);
      } catch (e) {
        if (!(e instanceof Refused)) throw e;
      }
    }
    throw new ModelLoadError(
      `${this.name} answers neither ${PROTOCOL_NAMES.vllm}, ${PROTOCOL_NAMES.sglang} nor ${PROTOCOL_NAMES.openai}: Distill Lens needs the teacher's log-probabilities of the prompt's tokens, which only these give (a server that only generates, like the chat completions API, cannot be a teacher)`,
      'teacher',
    );
  }

  /**
   * Checks that the server splits `text` into `localIds`, the ids the student's tokenizer gives:
   * a teacher with another tokenizer would be scored on tokens it never saw.
   */
  async checkTokenizer(text: string, localIds: number[]): Promise<void> {
    const protocol = await this.detect();
    const served =
      protocol === 'openai'
        ? await this.echoIds(text)
        : protocol === 'vllm'
        ? ((await this.post(`${this.root}/tokenize`, { model: this.spec.model, prompt: text })) as { tokens?: number[] })
            .tokens
        : ((await this.post(`${this.root}/generate`, {
            text,
            return_logprob: true,
            logprob_start_len: 0,
            sampling_params: { max_new_tokens: 1 },
          })) as { meta_info?: { input_token_logprobs?: [number | null, number, unknown][] } }).meta_info?.input_token_logprobs?.map(
            (t) => t[1],
          );
    if (!Array.isArray(served)) throw new ModelLoadError(`${this.name} did not say how it tokenizes a text`, 'teacher');
    const at = served.findIndex((id, i) => id !== localIds[i]);
    if (at >= 0 || served.length !== localIds.length)
      throw new ModelLoadError(
        `${this.name} tokenizes differently from the student: ${JSON.stringify(text)} is [${served.join(', ')}] there and [${localIds.join(', ')}] here${at >= 0 ? ` (first difference at token ${at})` : ''}. A served teacher must share the student's tokenizer`,
        'teacher',
      );
  }

  /**
   * The teacher's view of `ids`: row r is position r, which predicts ids[r + 1] (ids.length − 1
   * rows), each with the actual token's log p (and rank, where the server gives it) and the top K.
   */
  async promptLogprobs(ids: number[], k: number): Promise<ServedTeacherRow[]> {
    const protocol = await this.detect();
    try {
      return await this.ask(protocol, ids, k);
    } catch (e) {
      if (e instanceof Refused)
        throw new ModelLoadError(
          `${this.name} refused the request for ${ids.length} tokens with its top ${k}: ${e.message}. A server caps how many log-probabilities it sends (vLLM: --max-logprobs, 20 unless set) and how long a prompt may be: lower --teacher-top-k (distillLens.servedTeacherTopK) or select less text`,
          'teacher',
        );
      throw e;
    }
  }

  /**
   * The server's completion of `promptIds`: at most `maxNewTokens` ids, sampled with these
   * settings and this seed (reproducible as far as the engine makes seeded sampling so).
   */
  async sample(
    promptIds: number[],
    sampling: SamplingOptions,
    maxNewTokens: number,
    seed: number,
  ): Promise<ServedCompletion> {
    const protocol = await this.detect();
    const temperature = sampling.greedy ? 0 : sampling.temperature;
    const knobs = {
      temperature,
      top_p: sampling.topP,
      top_k: sampling.topK > 0 ? sampling.topK : -1,
      min_p: sampling.minP,
      repetition_penalty: sampling.repetitionPenalty,
    };
    if (protocol === 'openai' && (sampling.topK > 0 || sampling.minP > 0 || sampling.repetitionPenalty !== 1))
      throw new ModelLoadError(
        `${this.name} speaks ${PROTOCOL_NAMES.openai}, which samples with temperature and top-p only: --top-k, --min-p and --repetition-penalty are not available there`,
        'teacher',
      );
    try {
      if (protocol !== 'sglang') {
        const answer = (await this.post(`${this.spec.baseUrl}/completions`, {
          model: this.spec.model,
          prompt: promptIds,
          max_tokens: maxNewTokens,
          ...(protocol === 'vllm'
            ? { ...knobs, return_tokens_as_token_ids: true }
            : { temperature: knobs.temperature, top_p: knobs.top_p }),
          seed,
          logprobs: 0,
        })) as { choices?: { finish_reason?: string; logprobs?: { tokens?: string[] } }[] };
        const choice = answer.choices?.[0];
        const tokens = choice?.logprobs?.tokens;
        if (!Array.isArray(tokens)) throw this.malformed('a completion without its tokens');
        const ids = tokens.map((t) => {
          const id = this.idOf(t);
          if (id === undefined)
            throw this.malformed(`a sampled token ${JSON.stringify(t)} whose text is several ids' or none's`);
          return id;
        });
        return { ids, finish: choice?.finish_reason === 'length' ? 'length' : 'stop' };
      }
      const answer = (await this.post(`${this.root}/generate`, {
        input_ids: promptIds,
        sampling_params: { max_new_tokens: maxNewTokens, ...knobs, sampling_seed: seed },
        return_logprob: true,
      })) as {
        meta_info?: { output_token_logprobs?: [number, number, unknown][]; finish_reason?: { type?: string } };
      };
      const out = answer.meta_info?.output_token_logprobs;
      if (!Array.isArray(out)) throw this.malformed('a completion without output_token_logprobs');
      return {
        ids: out.map(([, id]) => id),
        finish: answer.meta_info?.finish_reason?.type === 'length' ? 'length' : 'stop',
      };
    } catch (e) {
      if (e instanceof Refused)
        throw new ModelLoadError(`${this.name} refused to sample a completion: ${e.message}`, 'teacher');
      throw e;
    }
  }

  private async ask(protocol: ServedProtocol, ids: number[], k: number): Promise<ServedTeacherRow[]> {
    return protocol === 'vllm' ? this.askVllm(ids, k) : protocol === 'sglang' ? this.askSglang(ids, k) : this.askEcho(ids, k);
  }

  /** A legacy token, "token_id:N" or its text, as an id; undefined when its text is several ids' or none's. */
  private idOf(token: string): number | undefined {
    const m = /^token_id:(\d+)$/.exec(token);
    if (m) return Number(m[1]);
    if (!this.o.tokenizer) throw new Refused('token texts, and no tokenizer to read them back to ids');
    if (!this.textIndex) {
      // each text that exactly one id has
      const index = new Map<string, number>();
      const shared = new Set<string>();
      for (let id = 0; id < this.o.tokenizer.vocabSize; id++) {
        const t = this.o.tokenizer.tokenText(id);
        if (index.has(t)) shared.add(t);
        else index.set(t, id);
      }
      for (const t of shared) index.delete(t);
      this.textIndex = index;
    }
    return this.textIndex.get(token);
  }

  private textIndex?: Map<string, number>;

  private async askEcho(ids: number[], k: number): Promise<ServedTeacherRow[]> {
    const answer = (await this.post(`${this.spec.baseUrl}/completions`, {
      model: this.spec.model,
      prompt: ids,
      max_tokens: 0,
      echo: true,
      logprobs: k,
    })) as {
      choices?: {
        logprobs?: {
          tokens?: string[];
          token_logprobs?: (number | null)[];
          top_logprobs?: (Record<string, number> | null)[];
        };
      }[];
    };
    const lp = answer.choices?.[0]?.logprobs;
    if (!lp || !Array.isArray(lp.tokens) || !Array.isArray(lp.token_logprobs) || !Array.isArray(lp.top_logprobs))
      throw new Refused('no echoed logprobs');
    this.expectLength(lp.tokens.length, ids.length);
    return ids.slice(1).map((target, r) => {
      const token = lp.tokens![r + 1];
      const read = this.idOf(token);
      const logp = lp.token_logprobs![r + 1];
      if ((read !== undefined && read !== target) || typeof logp !== 'number')
        throw this.malformed(`position ${r + 1} echoes ${JSON.stringify(token)} (log p ${logp}), not the prompt's token ${target}`);
      // the listed texts read back to ids; a text shared by several ids (or none) stays in the rest
      const top: { id: number; logp: number }[] = [];
      for (const [text, value] of Object.entries(lp.top_logprobs![r + 1] ?? {})) {
        const id = this.idOf(text);
        if (id !== undefined) top.push({ id, logp: value });
      }
      return { targetLogp: logp, top: top.sort((a, b) => b.logp - a.logp).slice(0, k) };
    });
  }

  /** The server's ids of a text, from the legacy protocol's echo (every token read back to an id). */
  private async echoIds(text: string): Promise<number[] | undefined> {
    const answer = (await this.post(`${this.spec.baseUrl}/completions`, {
      model: this.spec.model,
      prompt: text,
      max_tokens: 0,
      echo: true,
      logprobs: 0,
    })) as { choices?: { logprobs?: { tokens?: string[] } }[] };
    const tokens = answer.choices?.[0]?.logprobs?.tokens;
    if (!Array.isArray(tokens)) return undefined;
    return tokens.map((t) => this.idOf(t) ?? -1);
  }

  private async askVllm(ids: number[], k: number): Promise<ServedTeacherRow[]> {
    const answer = (await this.post(`${this.spec.baseUrl}/completions`, {
      model: this.spec.model,
      prompt: ids,
      max_tokens: 1,
      temperature: 0,
      prompt_logprobs: k,
    })) as { choices?: { prompt_logprobs?: (Record<string, { logprob: number; rank?: number }> | null)[] }[] };
    const per = answer.choices?.[0]?.prompt_logprobs;
    if (!Array.isArray(per)) throw new Refused('no prompt_logprobs');
    this.expectLength(per.length, ids.length);
    return ids.slice(1).map((target, r) => {
      const entries = per[r + 1];
      const actual = entries?.[String(target)];
      if (!entries || !actual) throw this.malformed(`position ${r + 1} does not list its actual token ${target}`);
      // the listed ids: the top K, and the actual token after them when it is not among them
      const top = Object.entries(entries)
        .map(([id, e]) => ({ id: Number(id), logp: e.logprob }))
        .sort((a, b) => b.logp - a.logp)
        .slice(0, k);
      return {
        targetLogp: actual.logprob,
        ...(actual.rank !== undefined ? { targetRank: actual.rank } : {}),
        top,
      };
    });
  }

  private async askSglang(ids: number[], k: number): Promise<ServedTeacherRow[]> {
    const answer = (await this.post(`${this.root}/generate`, {
      input_ids: ids,
      return_logprob: true,
      logprob_start_len: 0,
      top_logprobs_num: k,
      sampling_params: { max_new_tokens: 1, temperature: 0 },
    })) as {
      meta_info?: {
        input_token_logprobs?: [number | null, number, unknown][];
        input_top_logprobs?: ([number, number, unknown][] | null)[];
      };
    };
    const actual = answer.meta_info?.input_token_logprobs;
    const tops = answer.meta_info?.input_top_logprobs;
    if (!Array.isArray(actual) || !Array.isArray(tops)) throw new Refused('no input logprobs');
    this.expectLength(actual.length, ids.length);
    this.expectLength(tops.length, ids.length);
    return ids.slice(1).map((target, r) => {
      const [logp, id] = actual[r + 1];
      if (id !== target || typeof logp !== 'number')
        throw this.malformed(`position ${r + 1} gives token ${id} (log p ${logp}), not the prompt's ${target}`);
      return { targetLogp: logp, top: (tops[r + 1] ?? []).slice(0, k).map(([lp, tid]) => ({ id: tid, logp: lp })) };
    });
  }

  private expectLength(got: number, want: number): void {
    if (got !== want) throw this.malformed(`${got} positions for a prompt of ${want} tokens`);
  }

  private malformed(what: string): ModelLoadError {
    return new ModelLoadError(`${this.name} answered with log-probabilities of the wrong shape: ${what}`, 'teacher');
  }

  /** POSTs JSON and reads JSON, retrying rate limits, server hiccups and cut-off answers. */
  private async post(url: string, body: unknown): Promise<unknown> {
    const retries = this.o.retries ?? 5;
    let wait = this.o.backoffMs ?? 500;
    for (let attempt = 0; ; attempt++) {
      if (this.o.signal?.aborted) throw new CancelledError();
      const outcome = await this.once(url, body);
      if ('value' in outcome) return outcome.value;
      if (attempt >= retries) throw outcome.error;
      await sleep(outcome.retryAfterMs ?? wait, this.o.signal);
      wait *= 2;
    }
  }

  private async once(
    url: string,
    body: unknown,
  ): Promise<{ value: unknown } | { error: Error; retryAfterMs?: number }> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'distill-lens' };
    const key = this.o.apiKey ?? process.env[TEACHER_API_KEY_ENV];
    if (key) headers.authorization = `Bearer ${key}`;
    const timeout = AbortSignal.timeout(this.o.timeoutMs ?? 120_000);
    const signal = this.o.signal ? AbortSignal.any([this.o.signal, timeout]) : timeout;
    let response: Response;
    try {
      response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal });
    } catch (e) {
      if (this.o.signal?.aborted) throw new CancelledError();
      const cause = String((e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message);
      if (cause === 'ECONNREFUSED' || cause === 'ENOTFOUND')
        throw new ModelLoadError(
          `cannot reach the teacher at ${this.spec.baseUrl} (${cause}): is the server running, and is the address right?`,
          'teacher',
        );
      // a dropped connection or a timeout: worth another try
      return {
        error: new ModelLoadError(
          `the teacher at ${this.spec.baseUrl} did not answer (${cause}), also when asked again: check that the server is up and reachable from here, then run again`,
          'teacher',
        ),
      };
    }
    const text = await response.text().catch(() => undefined);
    if (response.status === 401 || response.status === 403)
      throw new ModelLoadError(
        `the teacher at ${this.spec.baseUrl} refused ${key ? 'the API key' : 'a request without an API key'} (HTTP ${response.status}): set ${TEACHER_API_KEY_ENV}${key ? ' to a key it accepts' : ''}`,
        'teacher',
      );
    if (response.status === 429 || response.status >= 500) {
      const after = Number(response.headers.get('retry-after'));
      return {
        error: new ModelLoadError(
          `the teacher at ${this.spec.baseUrl} answered HTTP ${response.status}${response.status === 429 ? ' (rate limited)' : ''} and kept doing so: try again later`,
          'teacher',
        ),
        ...(Number.isFinite(after) && after >= 0 ? { retryAfterMs: after * 1000 } : {}),
      };
    }
    // 400/404/422: this server does not take the request (another protocol, an unknown model)
    if (!response.ok) throw new Refused(`HTTP ${response.status}: ${(text ?? '').slice(0, 200)}`);
    try {
      return { value: JSON.parse(text ?? '') };
    } catch {
      return {
        error: new ModelLoadError(
          `the teacher at ${this.spec.baseUrl} sent an answer that is cut off or not JSON (${text?.length ?? 0} characters)`,
          'teacher',
        ),
      };
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(new CancelledError());
      },
      { once: true },
    );
  });
}
