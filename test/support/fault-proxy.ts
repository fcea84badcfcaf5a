import net from 'node:net';

/**
 * A TCP proxy in front of PostgreSQL that a test can cut: `down()` closes every connection and
 * refuses new ones (as a database that went away), `up()` lets them through again. Loopback only.
 */
export class FaultProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private blocked = false;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => {
      if (this.blocked) {
        client.destroy();
        return;
      }
      const upstream = net.connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  static async start(url: string): Promise<{ proxy: FaultProxy; url: string }> {
    const u = new URL(url);
    const proxy = new FaultProxy({ host: u.hostname, port: Number(u.port || 5432) });
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.server.address() as net.AddressInfo).port;
    u.hostname = '127.0.0.1';
    u.port = String(proxy.port);
    return { proxy, url: u.toString() };
  }

  down(): void {
    this.blocked = true;
    for (const s of this.sockets) s.destroy();
  }

  up(): void {
    this.blocked = false;
  }

  async close(): Promise<void> {
    this.down();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
