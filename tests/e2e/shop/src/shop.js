/**
 * The test shop's RUM wiring, bundled with aws-rum-web by esbuild at test time (nothing from a CDN).
 *
 * As in the AWS walkthrough with two app monitors: guests send to the guest monitor and signed-in users to
 * the signed-in monitor, both with temporary credentials from the Cognito identity pool (GetId, then
 * GetCredentialsForIdentity, with the user's login when signed in), and the identity id is added to every
 * event as the custom session attribute `cognitoIdentityId`. The embedded AWS's endpoints come from
 * `window.SHOP_CONFIG` (the shop server writes /config.js).
 */
import { AwsRum } from 'aws-rum-web';

const cfg = window.SHOP_CONFIG;
const USER_KEY = 'shop.user';

export function currentUser() {
    return localStorage.getItem(USER_KEY);
}

// Everything below takes the user the page started with: signing in or out navigates away, and the
// client's last flush on the way out must still use the credentials of the page's own audience.
function logins(user) {
    return user ? { [cfg.loginProvider]: `token-of-${user}` } : undefined;
}

const identityKey = (user) => `shop.identity.${user || 'guest'}`;
const credentialsKey = (user) => `shop.credentials.${user || 'guest'}`;

/** One call to the embedded Cognito identity service (the same JSON protocol the AWS SDK speaks). */
async function cognito(target, body) {
    const response = await fetch(`${cfg.cognitoEndpoint}/`, {
        method: 'POST',
        headers: {
            'Content-Type': 'application/x-amz-json-1.1',
            'X-Amz-Target': `AWSCognitoIdentityService.${target}`
        },
        body: JSON.stringify(body)
    });
    const json = await response.json();
    if (!response.ok) {
        const code = String(json.__type || response.status).split('#').pop();
        const error = new Error(`${code}: ${json.message || ''}`);
        error.code = code;
        throw error;
    }
    return json;
}

/** The identity id: remembered per user in localStorage, as Amplify and aws-rum-web do. */
export async function identityId(user = currentUser()) {
    let id = localStorage.getItem(identityKey(user));
    if (!id) {
        const request = { IdentityPoolId: cfg.identityPoolId };
        if (user) request.Logins = logins(user);
        id = (await cognito('GetId', request)).IdentityId;
        localStorage.setItem(identityKey(user), id);
    }
    return id;
}

function stored(user) {
    try {
        const value = JSON.parse(localStorage.getItem(credentialsKey(user)));
        return value ? { ...value, expiration: new Date(value.expiration) } : null;
    } catch (e) {
        return null;
    }
}

/** A credential provider for aws-rum-web: cached until 30 s before expiry, then renewed. */
export async function credentials(user = currentUser()) {
    const cached = stored(user);
    if (cached && cached.expiration.getTime() - Date.now() > 30000) {
        return cached;
    }
    const id = await identityId(user);
    const request = { IdentityId: id };
    if (user) request.Logins = logins(user);
    const answer = await cognito('GetCredentialsForIdentity', request);
    const fresh = {
        accessKeyId: answer.Credentials.AccessKeyId,
        secretAccessKey: answer.Credentials.SecretKey,
        sessionToken: answer.Credentials.SessionToken,
        expiration: new Date(answer.Credentials.Expiration * 1000)
    };
    localStorage.setItem(credentialsKey(user), JSON.stringify(fresh));
    return fresh;
}

/** Start the RUM web client for this page: the monitor of the audience, credentials, the identity. */
export async function start(options = {}) {
    const user = currentUser();
    const id = await identityId(user);
    const monitorId = user ? cfg.signedInMonitorId : cfg.guestMonitorId;
    const awsRum = new AwsRum(monitorId, '1.0.0', cfg.region, {
        endpoint: cfg.dataPlaneEndpoint,
        signing: true,
        allowCookies: true,
        sessionSampleRate: 1,
        dispatchInterval: cfg.dispatchInterval || 1000,
        cookieAttributes: { unique: true, secure: false },
        // aws-rum-web's default telemetries (errors, performance, http, replay), plus clicks on buttons.
        telemetries: [
            'errors',
            'performance',
            'http',
            'replay',
            ['interaction', { events: [{ event: 'click', cssLocator: 'button' }] }]
        ],
        ...options
    });
    // Before the first dispatch (a timer tick away), so every batch's session metadata carries it.
    awsRum.addSessionAttributes({ cognitoIdentityId: id });
    awsRum.setAwsCredentials(() => credentials(user));
    window.awsRum = awsRum;
    window.shopState = { identityId: id, user, monitorId };
    document.documentElement.dataset.rum = 'ready';
    return awsRum;
}

export function signIn(user) {
    localStorage.setItem(USER_KEY, user);
}

export function signOut() {
    localStorage.removeItem(USER_KEY);
}

const CART_KEY = 'shop.cart';

export function cart() {
    return JSON.parse(localStorage.getItem(CART_KEY) || '[]');
}

export function addToCart(item) {
    localStorage.setItem(CART_KEY, JSON.stringify([...cart(), item]));
}

export function clearCart() {
    localStorage.removeItem(CART_KEY);
}

/** The bot: one guest identity recording page views as fast as it likes, and re-enabling the client
 * whenever it gives up after refusals (aws-rum-web disables itself after a second 403). */
export async function flood({ perTick = 10, everyMs = 200 } = {}) {
    const awsRum = await start({ sessionEventLimit: 0, eventCacheSize: 5000 });
    let n = 0;
    window.botPages = 0;
    window.setInterval(() => {
        awsRum.enable();
        for (let i = 0; i < perTick; i += 1) {
            awsRum.recordPageView(`/bot/${n}`);
            n += 1;
        }
        window.botPages = n;
    }, everyMs);
}
