// A BlurHash decoder of our own (the format: https://github.com/woltapp/blurhash, "Algorithm").
// A hash is base-83 text: the component counts, the largest AC value, the DC (average) colour, then
// each AC component; the image is the sum of those cosine components, drawn small and scaled by CSS.

const DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

function base83(text) {
  let value = 0;
  for (const char of text) {
    const digit = DIGITS.indexOf(char);
    if (digit < 0) throw new Error(`not a blurhash character: ${char}`);
    value = value * 83 + digit;
  }
  return value;
}

function toLinear(channel) {
  const v = channel / 255;
  return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
}

function toSrgb(linear) {
  const v = Math.max(0, Math.min(1, linear));
  return Math.round((v <= 0.0031308 ? v * 12.92 : 1.055 * Math.pow(v, 1 / 2.4) - 0.055) * 255);
}

// The AC quantisation is sign-preserving and squared: a component byte 0..18 maps to -1..1.
function signedSquare(v) {
  return Math.sign(v) * v * v;
}

/** The hash's colours as RGBA bytes of a `width` x `height` image. Throws Error for a malformed hash. */
export function decode(hash, width, height, punch = 1) {
  if (typeof hash !== "string" || hash.length < 6) throw new Error("blurhash too short");
  const sizeFlag = base83(hash[0]);
  const countX = (sizeFlag % 9) + 1;
  const countY = Math.floor(sizeFlag / 9) + 1;
  if (hash.length !== 4 + 2 * countX * countY) throw new Error("blurhash length does not match its size flag");
  const maxAc = ((base83(hash[1]) + 1) / 166) * punch;
  const dc = base83(hash.slice(2, 6));
  const colours = [[toLinear(dc >> 16), toLinear((dc >> 8) & 255), toLinear(dc & 255)]];
  for (let i = 1; i < countX * countY; i++) {
    const ac = base83(hash.slice(4 + i * 2, 6 + i * 2));
    const r = Math.floor(ac / 361), g = Math.floor(ac / 19) % 19, b = ac % 19;
    colours.push([r, g, b].map((q) => signedSquare((q - 9) / 9) * maxAc));
  }
  const pixels = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let r = 0, g = 0, b = 0;
      for (let j = 0; j < countY; j++) {
        const cosY = Math.cos((Math.PI * y * j) / height);
        for (let i = 0; i < countX; i++) {
          const basis = Math.cos((Math.PI * x * i) / width) * cosY;
          const c = colours[j * countX + i];
          r += c[0] * basis; g += c[1] * basis; b += c[2] * basis;
        }
      }
      const at = 4 * (y * width + x);
      pixels[at] = toSrgb(r); pixels[at + 1] = toSrgb(g); pixels[at + 2] = toSrgb(b); pixels[at + 3] = 255;
    }
  }
  return pixels;
}

/** Paints `hash` onto `canvas` (its width/height attributes give the resolution, e.g. 32 x 32). */
export function paint(canvas, hash) {
  const { width, height } = canvas;
  const context = canvas.getContext("2d");
  context.putImageData(new ImageData(decode(hash, width, height), width, height), 0, 0);
}
