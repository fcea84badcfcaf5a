/**
 * What a support module must do when its test worker has no more files to run (support/worker.ts
 * runs these then): let go of what it kept for a next file, report what it did. Registered by the
 * modules themselves, so that a worker running only unit tests loads none of them.
 */
const tasks: Array<(queueDir: string) => Promise<void> | void> = [];

export function atWorkerEnd(task: (queueDir: string) => Promise<void> | void): void {
  tasks.push(task);
}

export async function runWorkerEnd(queueDir: string): Promise<void> {
  for (const task of tasks.splice(0)) await task(queueDir);
}
