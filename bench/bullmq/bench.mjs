// BullMQ baseline: the same figures as bench/figures_queue.py, against the same Redis.
// Usage: node bench.mjs <redis-url> <jobs> <bulk-jobs> <delayed-jobs> <min-delay-ms> <max-delay-ms>
import { Queue, Worker, QueueEvents } from "bullmq";

const [url, jobsArg, bulkArg, delayedArg, minDelayArg, maxDelayArg] = process.argv.slice(2);
const parsed = new URL(url);
const connection = { host: parsed.hostname, port: Number(parsed.port), db: Number(parsed.pathname.slice(1) || 0) };
const jobs = Number(jobsArg);
const bulkJobs = Number(bulkArg);
const delayedJobs = Number(delayedArg);
const [minDelay, maxDelay] = [Number(minDelayArg), Number(maxDelayArg)];
const perSecond = (count, ms) => Math.round((count / ms) * 1000 * 10) / 10;

function percentiles(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const pick = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { p50: pick(0.5), p99: pick(0.99), max: sorted[sorted.length - 1], min: sorted[0],
           early: sorted.filter((v) => v < 0).length, jobs: sorted.length };
}

async function drained(queue, name, count) {
  for (;;) {
    const counts = await queue.getJobCounts("completed");
    if (counts.completed >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const result = {};
{
  const queue = new Queue("single", { connection });
  const start = performance.now();
  for (let i = 0; i < jobs; i++) await queue.add("noop", { i }, { removeOnComplete: 100 });
  result.add_per_s = perSecond(jobs, performance.now() - start);
  await queue.obliterate({ force: true });
  await queue.close();
}
{
  const queue = new Queue("bulk", { connection });
  const start = performance.now();
  for (let offset = 0; offset < bulkJobs; offset += 500) {
    const batch = [];
    for (let i = offset; i < Math.min(bulkJobs, offset + 500); i++) batch.push({ name: "noop", data: { i } });
    await queue.addBulk(batch);
  }
  result.add_bulk_per_s = perSecond(bulkJobs, performance.now() - start);
  await queue.obliterate({ force: true });
  await queue.close();
}
{
  const queue = new Queue("process", { connection });
  const batch = [];
  for (let i = 0; i < jobs; i++) batch.push({ name: "noop", data: { i }, opts: { removeOnComplete: false } });
  await queue.addBulk(batch);
  let first = null;
  let last = null;
  const worker = new Worker("process", async () => {
    const now = performance.now();
    if (first === null) first = now;
    last = now;
    return { ok: true };
  }, { connection, concurrency: 5 });
  await drained(queue, "process", jobs);
  result.process_per_s = perSecond(jobs, last - first);
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
}
{
  const queue = new Queue("delayed", { connection });
  const lateness = [];
  const worker = new Worker("delayed", async (job) => {
    lateness.push(Date.now() - (job.timestamp + job.opts.delay));
  }, { connection, concurrency: 5 });
  await worker.waitUntilReady();
  for (let i = 0; i < delayedJobs; i++) {
    const delay = Math.round(minDelay + Math.random() * (maxDelay - minDelay));
    await queue.add("noop", { i }, { delay, removeOnComplete: false });
  }
  await drained(queue, "delayed", delayedJobs);
  result.delayed_lateness_ms = percentiles(lateness);
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
}
process.stdout.write(JSON.stringify(result) + "\n");
process.exit(0);
