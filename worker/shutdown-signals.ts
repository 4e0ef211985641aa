/**
 * SIGTERM and SIGINT handlers installed when this module is evaluated: worker/main.ts imports it
 * first, so a signal that arrives while the rest of the worker still loads or starts up is held
 * (not the default action, which would end the process without any cleanup) and handed to whoever
 * calls onShutdownSignal, in arrival order.
 */
type SignalHandler = (signal: NodeJS.Signals) => void;

const held: NodeJS.Signals[] = [];
let handler: SignalHandler | undefined;

const receive = (signal: NodeJS.Signals) => {
  if (handler) handler(signal);
  else held.push(signal);
};
process.on("SIGTERM", receive);
process.on("SIGINT", receive);

/** Routes every signal from now on to `next`, after the ones held so far. */
export function onShutdownSignal(next: SignalHandler): void {
  handler = next;
  for (const signal of held.splice(0)) next(signal);
}
