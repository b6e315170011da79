/**
 * A small remote control for headless Chromium, driven by rumguard.local.browser over stdin/stdout.
 *
 * Each input line is a JSON command {id, op, ...}; each output line answers one: {id, ok, value} or
 * {id, ok: false, error}. Commands run concurrently, so one browser context can wait while another acts.
 * Every context is a separate user (its own cookies and localStorage) with one page; the page's console
 * messages and uncaught errors are kept for `logs`.
 */
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

let browser = null;
const contexts = new Map();

const ops = {
    async launch({ executablePath, args = [] }) {
        browser = await chromium.launch({ executablePath, headless: true, args });
        return browser.version();
    },
    async newContext({ name }) {
        const context = await browser.newContext();
        const page = await context.newPage();
        const logs = [];
        page.on('console', (message) => logs.push(`${message.type()}: ${message.text()}`));
        page.on('pageerror', (error) => logs.push(`pageerror: ${error.message}`));
        contexts.set(name, { context, page, logs });
        return name;
    },
    async goto({ ctx, url }) {
        const response = await page(ctx).goto(url, { waitUntil: 'load' });
        return response ? response.status() : null;
    },
    async click({ ctx, selector }) {
        await page(ctx).click(selector);
        return true;
    },
    async clickAndWait({ ctx, selector }) {
        await Promise.all([page(ctx).waitForNavigation({ waitUntil: 'load' }), page(ctx).click(selector)]);
        return page(ctx).url();
    },
    async fill({ ctx, selector, value }) {
        await page(ctx).fill(selector, value);
        return true;
    },
    async evaluate({ ctx, expression }) {
        return page(ctx).evaluate(expression);
    },
    async waitFor({ ctx, expression, timeoutMs = 15000 }) {
        await page(ctx).waitForFunction(expression, null, { timeout: timeoutMs, polling: 100 });
        return true;
    },
    async logs({ ctx }) {
        return contexts.get(ctx).logs;
    },
    async screenshot({ ctx, path }) {
        await page(ctx).screenshot({ path, fullPage: true });
        return path;
    },
    async closeContext({ ctx }) {
        const entry = contexts.get(ctx);
        contexts.delete(ctx);
        await entry.context.close();
        return true;
    },
    async close() {
        if (browser) {
            await browser.close();
        }
        return true;
    }
};

function page(ctx) {
    const entry = contexts.get(ctx);
    if (!entry) {
        throw new Error(`no browser context named ${ctx}`);
    }
    return entry.page;
}

function answer(message) {
    process.stdout.write(`${JSON.stringify(message)}\n`);
}

const lines = createInterface({ input: process.stdin });
lines.on('line', async (line) => {
    let command;
    try {
        command = JSON.parse(line);
    } catch (error) {
        answer({ id: null, ok: false, error: `not JSON: ${line}` });
        return;
    }
    const { id, op, ...args } = command;
    try {
        const run = ops[op];
        if (!run) {
            throw new Error(`unknown op ${op}`);
        }
        const value = await run(args);
        answer({ id, ok: true, value: value === undefined ? null : value });
        if (op === 'close') {
            process.exit(0);
        }
    } catch (error) {
        answer({ id, ok: false, error: String(error && error.stack ? error.stack : error) });
    }
});
lines.on('close', async () => {
    if (browser) {
        await browser.close().catch(() => {});
    }
    process.exit(0);
});
