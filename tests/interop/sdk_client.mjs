// sdk_client.mjs — runs one register / recover / delete with the unmodified juicebox-sdk
// against the realms in a configuration file, and prints the outcome as one JSON line.
//
// Usage:
//   node sdk_client.mjs register --config CFG --user USER --pin PIN --secret-hex HEX [--info S] [--guesses N]
//   node sdk_client.mjs recover  --config CFG --user USER --pin PIN [--info S]
//   node sdk_client.mjs delete   --config CFG --user USER
// USER must be hex: the SDK's AuthTokenGenerator takes the secret id as hex.
// Auth tokens are vended by the SDK's own AuthTokenGenerator from the Ed25519 PKCS#8 key in
// PINVAULT_INTEROP_KEY (hex), tenant PINVAULT_INTEROP_TENANT, key version PINVAULT_INTEROP_VERSION.
// Exit status: 0 when the outcome was printed (success or a protocol error), 2 on bad usage.
import { webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

// The SDK's random-number source reads globalThis.crypto. Node 20 and later define it; Node 18
// (Debian 12's nodejs) does not in an ES module, and the SDK then panics on every token it vends.
if (globalThis.crypto === undefined) globalThis.crypto = webcrypto;

const require = createRequire(import.meta.url);
const sdkDir = require.resolve('juicebox-sdk/juicebox-sdk_bg.js').replace(/juicebox-sdk_bg\.js$/, '');
const bg = await import(sdkDir + 'juicebox-sdk_bg.js');
const wasmModule = await WebAssembly.compile(readFileSync(sdkDir + 'juicebox-sdk_bg.wasm'));
const imports = {};
for (const i of WebAssembly.Module.imports(wasmModule)) imports[i.module] ??= bg;
bg.__wbg_set_wasm((await WebAssembly.instantiate(wasmModule, imports)).exports);

function usage(msg) {
  process.stderr.write(`sdk_client: ${msg}\n`);
  process.exit(2);
}

const [op, ...rest] = process.argv.slice(2);
const opts = {};
for (let i = 0; i < rest.length; i += 2) {
  if (!rest[i].startsWith('--') || i + 1 >= rest.length) usage(`bad argument ${rest[i]}`);
  opts[rest[i].slice(2)] = rest[i + 1];
}
if (!['register', 'recover', 'delete'].includes(op)) usage('operation must be register, recover or delete');
if (!opts.config || !opts.user) usage('--config and --user are required');

const keyHex = process.env.PINVAULT_INTEROP_KEY;
const tenant = process.env.PINVAULT_INTEROP_TENANT ?? 'acme';
const version = Number(process.env.PINVAULT_INTEROP_VERSION ?? '1');
if (!keyHex) usage('PINVAULT_INTEROP_KEY is not set');
const generator = new bg.AuthTokenGenerator({ key: keyHex, tenant, version });
globalThis.JuiceboxGetAuthToken = async (realmId) =>
  generator.vend(Buffer.from(realmId).toString('hex'), opts.user);

const enc = (s) => new TextEncoder().encode(s);
const config = JSON.parse(readFileSync(opts.config, 'utf8'));
const client = new bg.Client(new bg.Configuration(config), []);

function report(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

try {
  if (op === 'register') {
    await client.register(enc(opts.pin ?? ''), new Uint8Array(Buffer.from(opts['secret-hex'] ?? '', 'hex')),
      enc(opts.info ?? ''), Number(opts.guesses ?? '5'));
    report({ ok: true });
  } else if (op === 'recover') {
    const secret = await client.recover(enc(opts.pin ?? ''), enc(opts.info ?? ''));
    report({ ok: true, secret_hex: Buffer.from(secret).toString('hex') });
  } else {
    await client.delete();
    report({ ok: true });
  }
} catch (e) {
  if (e instanceof bg.RecoverError) {
    report({ ok: false, error: bg.RecoverErrorReason[e.reason], guesses_remaining: e.guesses_remaining ?? null });
  } else if (typeof e === 'number') {
    const names = op === 'register' ? bg.RegisterError : bg.DeleteError;
    report({ ok: false, error: names[e] ?? String(e) });
  } else {
    report({ ok: false, error: String(e?.message ?? e) });
  }
}
