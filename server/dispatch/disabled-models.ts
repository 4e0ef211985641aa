import type { ModelRegistry } from "../registry/model-registry.js";

/**
 * The names of the disabled models, as the registry (shared by every replica) says, read about
 * once a second off the dispatch paths. Placement and claims leave a disabled model's queued jobs
 * where they are (they wait, with the reason MODEL_DISABLED, until the model is enabled again or
 * they are cancelled); a model enabled again wakes placement through `onEnabled`.
 */
export class DisabledModels {
  readonly #registry: ModelRegistry;
  readonly #intervalMs: number;
  readonly #onEnabled: () => void;
  readonly #onError: (err: unknown) => void;
  #names: ReadonlySet<string> = new Set();
  #list: readonly string[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(
    registry: ModelRegistry,
    { intervalMs = 1000, onEnabled = () => {}, onError = () => {} }: { intervalMs?: number; onEnabled?: () => void; onError?: (err: unknown) => void } = {},
  ) {
    this.#registry = registry;
    this.#intervalMs = intervalMs;
    this.#onEnabled = onEnabled;
    this.#onError = onError;
  }

  /** Reads the registry now, then every interval until stop(). */
  async start(): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#intervalMs);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The disabled model names (for the claim filter: empty almost always). */
  get list(): readonly string[] {
    return this.#list;
  }

  has(model: string): boolean {
    return this.#names.has(model);
  }

  get names(): ReadonlySet<string> {
    return this.#names;
  }

  /** Reads the registry once (concurrent calls share the read). */
  refresh(): Promise<void> {
    this.#refreshing ??= (async () => {
      try {
        const models = await this.#registry.list();
        const next = new Set(models.filter((m) => !m.enabled).map((m) => m.name));
        const enabledAgain = [...this.#names].some((n) => !next.has(n));
        this.#names = next;
        this.#list = [...next];
        if (enabledAgain) this.#onEnabled();
      } catch (err) {
        this.#onError(err);
      }
    })().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }
}
