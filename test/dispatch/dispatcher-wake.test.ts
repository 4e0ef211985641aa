import { expect, test } from "bun:test";
import { Dispatcher, type DispatcherDeps } from "../../server/dispatch/dispatcher.js";

/** A dispatcher whose rounds only count themselves (no worker is ever free). */
function countingDispatcher() {
  let rounds = 0;
  const deps = {
    ctx: { logger: { error: () => {} } },
    registry: {
      soleFree: () => {
        rounds++;
        return undefined;
      },
    },
  } as unknown as DispatcherDeps;
  return { dispatcher: new Dispatcher(deps), rounds: () => rounds };
}

const microtasks = async (n: number) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

test("a wake that comes while a round is ending is never lost: it gets a round of its own", async () => {
  // The window is a few microtasks wide (after the loop's last check, before it lets go of the
  // running round); a wake at every depth around it must be followed by one more round.
  for (let depth = 0; depth < 12; depth++) {
    const { dispatcher, rounds } = countingDispatcher();
    dispatcher.wake();
    await microtasks(depth);
    dispatcher.wake();
    await dispatcher.idle();
    await new Promise((r) => setImmediate(r));
    await dispatcher.idle();
    expect({ depth, rounds: rounds() }).toEqual({ depth, rounds: 2 });
  }
});
