// One task at a time, in the order they were added: socket events, refetches and catch-up all go
// through it, so an event that arrives while a page is being read is applied after that page,
// never overwritten by it (docs/DELIVERY.md, "hold the events ... then apply them").

export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();
  private pending = 0;

  constructor(private readonly onError: (error: unknown) => void) {}

  /** Runs `task` after every task added before it; its result, or its error. */
  run<T>(task: () => Promise<T> | T): Promise<T> {
    this.pending += 1;
    const result = this.tail.then(task);
    this.tail = result.then(
      () => this.done(),
      () => this.done(),
    );
    return result;
  }

  /** Like run, for work nobody awaits: a failure goes to onError. */
  enqueue(task: () => Promise<void> | void): void {
    this.run(task).catch(this.onError);
  }

  get size(): number {
    return this.pending;
  }

  /** Resolves once every task added so far, and any they added, has finished. */
  async idle(): Promise<void> {
    while (this.pending > 0) await this.tail;
  }

  private done(): void {
    this.pending -= 1;
  }
}
