// The official OpenAI Node SDK (npm openai, the version in package.json) as
// a client of `proxyauth serve`, driven by the Go interop tests.
//
// argv[2] is JSON that configures the client:
//   {"client": "openai", "baseURL": "http://127.0.0.1:4000/v1", "apiKey": "..."}
//   {"client": "azure", "endpoint": "http://127.0.0.1:4000", "apiKey": "...",
//    "deployment": "gpt-4o-mini", "apiVersion": "2024-10-21"}
// The SDK's own retries are off, so that a request that succeeds after a
// 401 was healed by the gateway, not by the SDK.
//
// Then each line on stdin is a command, and each command's output ends
// with a line {"kind": "done", ...}:
//   {"op": "chat"}                      a chat completion: {"kind":"done","ok":true,"content":...}
//   {"op": "chat", "stream": true}      a streamed one: {"kind":"chunk","i":0,"content":...} as
//                                       each chunk arrives, then done with the joined content
//   {"op": "streams", "count": 600, "chunks": 4}
//                                       streamed completions in a row, each checked to have
//                                       all its chunks: {"kind":"progress","n":1} after each
//                                       but the last, then done with ok, bad and the first failure
// A failed request gives {"kind":"done","ok":false,"status":401,"error":"..."}.
// The script exits when stdin closes.
import { createInterface } from 'node:readline';

import OpenAI, { AzureOpenAI } from 'openai';

const cfg = JSON.parse(process.argv[2]);
const common = { apiKey: cfg.apiKey, maxRetries: 0, timeout: 60_000 };
const client = cfg.client === 'azure'
  ? new AzureOpenAI({ ...common, endpoint: cfg.endpoint, deployment: cfg.deployment, apiVersion: cfg.apiVersion })
  : new OpenAI({ ...common, baseURL: cfg.baseURL });

const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const messages = [{ role: 'user', content: 'ping' }];
const model = 'gpt-4o-mini';

function failure(err) {
  return { kind: 'done', ok: false, status: err?.status ?? 0, error: String(err?.message ?? err) };
}

async function chat(stream) {
  if (!stream) {
    const r = await client.chat.completions.create({ model, messages });
    return { kind: 'done', ok: true, content: r.choices[0].message.content };
  }
  const s = await client.chat.completions.create({ model, messages, stream: true });
  let i = 0;
  let content = '';
  for await (const chunk of s) {
    const c = chunk.choices[0]?.delta?.content ?? '';
    content += c;
    print({ kind: 'chunk', i: i++, content: c });
  }
  return { kind: 'done', ok: true, content, chunks: i };
}

async function streams(count, chunks) {
  const want = Array.from({ length: chunks }, (_, i) => `chunk-${i} `).join('');
  let ok = 0;
  let bad = 0;
  let first = '';
  for (let n = 0; n < count; n++) {
    // One line per stream, so that the test's wait for a line bounds one
    // stream, not all of them.
    if (n > 0) print({ kind: 'progress', n });
    try {
      const s = await client.chat.completions.create({ model, messages, stream: true });
      let content = '';
      for await (const chunk of s) content += chunk.choices[0]?.delta?.content ?? '';
      if (content === want) {
        ok++;
        continue;
      }
      bad++;
      first ||= `stream ${n}: got ${JSON.stringify(content)}`;
    } catch (err) {
      bad++;
      first ||= `stream ${n}: ${err?.status ?? ''} ${err?.message ?? err}`;
    }
  }
  return { kind: 'done', ok: bad === 0, whole: ok, bad, first };
}

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line);
  let out;
  try {
    if (cmd.op === 'chat') out = await chat(cmd.stream === true);
    else if (cmd.op === 'streams') out = await streams(cmd.count, cmd.chunks);
    else out = { kind: 'done', ok: false, error: `unknown op ${cmd.op}` };
  } catch (err) {
    out = failure(err);
  }
  print(out);
}
