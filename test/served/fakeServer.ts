/**
 * A teacher server on the loopback address that speaks vLLM's or SGLang's request and response
 * shapes and computes its answers from a local model (float64 log-softmax of its logits), so
 * what the client reads can be checked exactly. It samples completions too (at the request's
 * temperature, top-k and seed; greedy at 0) and keeps them in `samples`, EOS included when it
 * ends one (vLLM lists it, this SGLang leaves it out). Misbehaviours on demand: an API key it
 * requires, rate limiting with Retry-After, answers cut off, a tokenizer that differs.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { LanguageModel } from '../../src/models/languageModel';
import { resolveModel } from '../../src/models/modelSource';
import { TextTokenizer } from '../../src/models/tokenizer';
import { eosIds } from '../../src/generate/generator';

export interface FakeServerOptions {
  /** openai: only the legacy completions API (echo with logprobs), no prompt_logprobs */
  protocol: 'vllm' | 'sglang' | 'openai';
  /** openai: tokens as their text, not "token_id:N" */
  tokenTexts?: boolean;
  /** answers 401 unless the request carries this key */
  apiKey?: string;
  /** the first N requests answer 429 with Retry-After: retryAfter seconds */
  rateLimited?: number;
  retryAfter?: number;
  /** the first N answers are cut off halfway */
  cutOff?: number;
  /** the server's tokenizer adds this to every id (a different tokenizer) */
  idShift?: number;
  /** a sampled completion ends with the EOS after this many tokens (as if the model chose it) */
  eosAfter?: number;
}

export interface FakeServer {
  url: string;
  /** every request's path and the time it came (ms) */
  requests: { path: string; at: number }[];
  /** every completion it sampled: the prompt's ids and the completion's (an EOS it chose included) */
  samples: { prompt: number[]; completion: number[] }[];
  /** the log-softmax row of the model at each position of `ids` (float64), as the server computes it */
  logSoftmax(ids: number[]): Promise<Float64Array[]>;
  close(): Promise<void>;
}

export async function startFakeServer(modelFolder: string, o: FakeServerOptions): Promise<FakeServer> {
  const lm = await LanguageModel.open(await resolveModel(modelFolder), 'cpu');
  const tokenizer = TextTokenizer.fromFolder(modelFolder);
  const logSoftmax = async (ids: number[]) => {
    const logits = await lm.forward(ids);
    const V = logits.vocab;
    const data = logits.data as Float32Array;
    return ids.map((_, r) => {
      const row = Float64Array.from(data.subarray(r * V, (r + 1) * V));
      const max = row.reduce((a, b) => Math.max(a, b), -Infinity);
      const logZ = max + Math.log(row.reduce((s, z) => s + Math.exp(z - max), 0));
      return row.map((z) => z - logZ);
    });
  };
  const ranked = (row: Float64Array) => Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b);
  const eos = new Set(eosIds(modelFolder, lm.model.config));
  const samples: FakeServer['samples'] = [];
  /** Samples up to `max` tokens after `prompt`: softmax(log p / T) over the top k (all when k ≤ 0), argmax at T = 0. */
  const sample = async (prompt: number[], max: number, temperature: number, topK: number, seed: number) => {
    let state = seed >>> 0 || 1;
    const uniform = () => {
      // xorshift32: the server's own stream, seeded by the request
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) / 2 ** 32;
    };
    const ids = [...prompt];
    for (let n = 0; n < max; n++) {
      const rows = await logSoftmax(ids);
      const row = rows[rows.length - 1];
      const order = ranked(row);
      let next = order[0];
      if (temperature > 0) {
        const kept = topK > 0 ? order.slice(0, topK) : order;
        const weights = kept.map((t) => Math.exp((row[t] - row[order[0]]) / temperature));
        let u = uniform() * weights.reduce((a, b) => a + b, 0);
        next = kept[kept.length - 1];
        for (let j = 0; j < kept.length; j++)
          if ((u -= weights[j]) <= 0) {
            next = kept[j];
            break;
          }
      }
      ids.push(next);
      if (eos.has(next)) break;
      if (n + 1 === o.eosAfter && n + 1 < max) {
        ids.push([...eos][0]);
        break;
      }
    }
    const completion = ids.slice(prompt.length);
    samples.push({ prompt, completion });
    return { completion, stopped: eos.has(completion[completion.length - 1]) };
  };

  let served = 0;
  const requests: FakeServer['requests'] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      requests.push({ path: req.url ?? '', at: performance.now() });
      const send = (status: number, value: unknown, headers: Record<string, string> = {}) => {
        const text = JSON.stringify(value);
        const cut = status === 200 && served++ < (o.cutOff ?? 0);
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(cut ? text.slice(0, Math.floor(text.length / 2)) : text);
      };
      if (o.apiKey && req.headers.authorization !== `Bearer ${o.apiKey}`)
        return send(401, { error: { message: 'invalid api key' } });
      if (requests.length <= (o.rateLimited ?? 0))
        return send(429, { error: 'rate limited' }, { 'retry-after': String(o.retryAfter ?? 0) });
      const request = JSON.parse(body || '{}');
      const shift = (ids: number[]) => ids.map((id) => id + (o.idShift ?? 0));
      void answer(req.url ?? '', request, shift)
        .then((a) =>
          !a
            ? send(404, { detail: 'Not Found' })
            : (a as { status?: number }).status
              ? send((a as { status: number }).status, a)
              : send(200, a),
        )
        .catch((e) => send(500, { error: String(e) }));
    });
  });

  const answer = async (
    route: string,
    request: any,
    shift: (ids: number[]) => number[],
  ): Promise<unknown | undefined> => {
    if (o.protocol === 'vllm' && route === '/tokenize')
      return { tokens: shift(tokenizer.encode(request.prompt).ids), count: 0, max_model_len: 512 };
    if (o.protocol === 'openai' && route === '/v1/completions') {
      if (request.prompt_logprobs !== undefined)
        return { status: 400, detail: 'prompt_logprobs is not a parameter' };
      const token = (id: number) => (o.tokenTexts ? tokenizer.tokenText(id) : `token_id:${id}`);
      if (request.echo) {
        const ids: number[] =
          typeof request.prompt === 'string' ? shift(tokenizer.encode(request.prompt).ids) : request.prompt;
        const k: number = request.logprobs ?? 0;
        const rows = await logSoftmax(ids);
        return {
          choices: [
            {
              index: 0,
              text: '',
              logprobs: {
                tokens: ids.map(token),
                token_logprobs: ids.map((id, i) => (i === 0 ? null : rows[i - 1][id])),
                // texts that several ids share collide in a dict, as a real server's would
                top_logprobs: ids.map((_, i) =>
                  i === 0
                    ? null
                    : Object.fromEntries(
                        ranked(rows[i - 1])
                          .slice(0, k)
                          .reverse()
                          .map((t) => [token(t), rows[i - 1][t]]),
                      ),
                ),
              },
            },
          ],
        };
      }
      const s = await sample(request.prompt, request.max_tokens, request.temperature, -1, request.seed);
      return {
        choices: [
          {
            index: 0,
            text: tokenizer.decode(s.completion),
            finish_reason: s.stopped ? 'stop' : 'length',
            logprobs: { tokens: s.completion.map(token) },
          },
        ],
      };
    }
    if (o.protocol === 'vllm' && route === '/v1/completions' && request.prompt_logprobs === undefined) {
      const s = await sample(
        request.prompt,
        request.max_tokens,
        request.temperature,
        request.top_k,
        request.seed,
      );
      return {
        id: 'cmpl-2',
        object: 'text_completion',
        choices: [
          {
            index: 0,
            text: tokenizer.decode(s.completion),
            finish_reason: s.stopped ? 'stop' : 'length',
            logprobs: { tokens: s.completion.map((id) => `token_id:${id}`) },
          },
        ],
      };
    }
    if (o.protocol === 'sglang' && route === '/generate' && request.logprob_start_len === undefined) {
      const p = request.sampling_params;
      const s = await sample(request.input_ids, p.max_new_tokens, p.temperature, p.top_k, p.sampling_seed);
      // SGLang's output without the EOS it stopped at
      const out = s.stopped ? s.completion.slice(0, -1) : s.completion;
      return {
        text: tokenizer.decode(out),
        meta_info: {
          output_token_logprobs: out.map((id) => [0, id, null]),
          finish_reason: { type: s.stopped ? 'stop' : 'length' },
        },
      };
    }
    if (o.protocol === 'vllm' && route === '/v1/completions') {
      const ids: number[] = request.prompt;
      const k: number = request.prompt_logprobs;
      const rows = await logSoftmax(ids);
      const promptLogprobs = ids.map((id, i) => {
        if (i === 0) return null;
        const row = rows[i - 1];
        const order = ranked(row);
        const entries: Record<string, { logprob: number; rank: number; decoded_token: string }> = {};
        for (const t of [...order.slice(0, k), id])
          entries[String(t)] = {
            logprob: row[t],
            rank: order.indexOf(t) + 1,
            decoded_token: tokenizer.tokenText(t),
          };
        return entries;
      });
      return {
        id: 'cmpl-1',
        object: 'text_completion',
        choices: [{ index: 0, text: ' ', prompt_logprobs: promptLogprobs }],
      };
    }
    if (o.protocol === 'sglang' && route === '/generate') {
      const ids: number[] = request.input_ids ?? shift(tokenizer.encode(request.text).ids);
      const k: number = request.top_logprobs_num ?? 0;
      const rows = await logSoftmax(ids);
      return {
        text: ' ',
        meta_info: {
          input_token_logprobs: ids.map((id, i) => [i === 0 ? null : rows[i - 1][id], id, null]),
          input_top_logprobs: ids.map((_, i) =>
            i === 0
              ? null
              : ranked(rows[i - 1])
                  .slice(0, k)
                  .map((t) => [rows[i - 1][t], t, null]),
          ),
        },
      };
    }
    return undefined;
  };

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    samples,
    logSoftmax,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await lm.release();
    },
  };
}
