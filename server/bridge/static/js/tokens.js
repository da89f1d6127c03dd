// The engine's token registry as the page offers it: the one place the page lists tokens.
export const TOKENS = ["SOL", "USDC", "USDT", "JUP", "BONK", "RAY"];

export const DEFAULT_PAIR = { tokenIn: "SOL", tokenOut: "USDC" };
