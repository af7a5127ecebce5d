/* guest/plan/inflate.c — raw DEFLATE decoder (RFC 1951), written from the RFC
 * for compressed qcow2 clusters. Freestanding: no globals, workspace from the
 * caller, bounded work per input bit.
 *
 * Huffman codes decode through one table indexed by the next pbits input bits
 * (pbits <= 10 for literal/length codes, <= 8 for distance codes); codes
 * longer than pbits, which are rare by construction, finish bit by bit with
 * the canonical first-code/count arithmetic of RFC 1951 §3.2.2. */
#include "inflate.h"
#include "byteorder.h"

#define INF_MAXBITS 15u	     /* longest Huffman code */
#define INF_LIT_PBITS 10u    /* lookup bits of dynamic literal/length tables */
#define INF_DIST_PBITS 8u    /* lookup bits of dynamic distance tables */
#define INF_FIXLIT_PBITS 9u  /* the fixed literal/length code's longest code */
#define INF_FIXDIST_PBITS 5u /* the fixed distance code's only length */
#define INF_CODES_PBITS 7u   /* the code length code's longest code */
#define INF_NLIT 288u	     /* literal/length symbols a code may describe */
#define INF_NDIST 32u	     /* distance symbols a code may describe */
#define INF_NCODES 19u	     /* code length code symbols */

/* A table entry: bits 0-3 code length to consume, 4-7 extra bits that follow,
 * 8-10 kind, 16-31 value (literal byte, length or distance base, or for
 * INF_K_LONG the code's first pbits bits as a canonical, MSB-first number). */
enum inf_kind {
	INF_K_LIT = 0,	/* a literal byte; for the code length code, the symbol */
	INF_K_BASE = 1, /* a length or distance: value + extra bits */
	INF_K_EOB = 2,	/* end of block */
	INF_K_BAD = 3,	/* not a valid symbol (286, 287, 30, 31, unused code) */
	INF_K_LONG = 4, /* a code longer than pbits: finish in inf_long */
};

#define INF_E(kind, extra, val)                                                                    \
	((uint32_t)(val) << 16 | (uint32_t)(kind) << 8 | (uint32_t)(extra) << 4)
#define INF_E_LEN(e) ((e)&15u)
#define INF_E_EXTRA(e) ((e) >> 4 & 15u)
#define INF_E_KIND(e) ((e) >> 8 & 7u)
#define INF_E_VAL(e) ((e) >> 16)

/* Which alphabet a table codes; sets the symbol meanings and the rules for
 * incomplete codes. */
enum inf_set {
	INF_SET_CODES,
	INF_SET_LIT,
	INF_SET_DIST,
};

struct inf_huff {
	uint32_t *prim;	  /* 1 << pbits entries, indexed by the next pbits bits */
	uint32_t *sorted; /* entries of the codes longer than pbits, canonical order */
	uint32_t pbits;
	uint16_t count[INF_MAXBITS + 1]; /* codes of each length */
	uint16_t first[INF_MAXBITS + 1]; /* first canonical code of each length */
	uint16_t offs[INF_MAXBITS + 1];	 /* index in sorted of that first code */
};

struct inf_work {
	uint32_t lit_prim[1u << INF_LIT_PBITS];
	uint32_t dist_prim[1u << INF_DIST_PBITS];
	uint32_t fixlit_prim[1u << INF_FIXLIT_PBITS];
	uint32_t fixdist_prim[1u << INF_FIXDIST_PBITS];
	uint32_t codes_prim[1u << INF_CODES_PBITS];
	uint32_t lit_sorted[INF_NLIT];
	uint32_t dist_sorted[INF_NDIST];
	struct inf_huff lit, dist, fixlit, fixdist, codes;
	uint8_t lens[INF_NLIT + INF_NDIST];
	uint32_t fixed_ready; /* fixlit/fixdist built during this call */
};

_Static_assert(sizeof(struct inf_work) <= PLAN_INFLATE_WORK_SIZE,
	       "PLAN_INFLATE_WORK_SIZE too small");
_Static_assert(_Alignof(struct inf_work) <= 8, "workspace alignment");

/* Decoder state. Bits are consumed LSB first from bb, which holds bc valid
 * bits (bits above bc are zero or the true next input bits). */
struct inf {
	const uint8_t *in;
	size_t in_len;
	size_t ip; /* next input byte not yet in bb */
	uint64_t bb;
	uint32_t bc;
	uint8_t *out;
	size_t out_len;
	size_t op; /* bytes written */
	struct inf_work *w;
};

/* Block outcomes. INF_FULL: output full and another byte was due (success).
 * INF_SHORT: the input ended (success only if the output is full). */
enum {
	INF_NEXT = 0, /* block ended normally */
	INF_FULL,
	INF_SHORT,
	INF_BAD,
};

/* RFC 1951 §3.2.5: lengths of symbols 257..285, distances of 0..29. */
static const uint16_t inf_len_base[29] = {3,  4,  5,  6,   7,	8,   9,	  10,  11, 13,
					  15, 17, 19, 23,  27,	31,  35,  43,  51, 59,
					  67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t inf_len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
					  2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t inf_dist_base[30] = {
    1,	 2,   3,   4,	5,   7,	   9,	 13,   17,   25,   33,	 49,   65,    97,    129,
    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t inf_dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,	3,  4,	4,  5,	5,  6,
					   6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* RFC 1951 §3.2.7: the order code length code lengths arrive in. */
static const uint8_t inf_codes_order[INF_NCODES] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
						    11, 4,  12, 3, 13, 2, 14, 1, 15};

/* Tops bb up to at least 56 valid bits, or to all that is left of the input. */
static inline void inf_refill(struct inf *s)
{
	if (s->in_len - s->ip >= 8) {
		s->bb |= get_le64(s->in + s->ip) << s->bc;
		s->ip += (63 - s->bc) >> 3;
		s->bc |= 56;
		return;
	}
	while (s->bc <= 56 && s->ip < s->in_len) {
		s->bb |= (uint64_t)s->in[s->ip++] << s->bc;
		s->bc += 8;
	}
}

static inline void inf_drop(struct inf *s, uint32_t n)
{
	s->bb >>= n;
	s->bc -= n;
}

/* Takes n <= 16 bits; INF_SHORT if the input has fewer. */
static int inf_bits(struct inf *s, uint32_t n, uint32_t *ret)
{
	if (s->bc < n) {
		inf_refill(s);
		if (s->bc < n)
			return INF_SHORT;
	}
	*ret = (uint32_t)s->bb & ((1u << n) - 1);
	inf_drop(s, n);
	return 0;
}

static uint32_t inf_reverse(uint32_t code, uint32_t len)
{
	uint32_t r = 0;

	for (uint32_t i = 0; i < len; i++, code >>= 1)
		r = r << 1 | (code & 1);
	return r;
}

static uint32_t inf_sym_entry(enum inf_set set, uint32_t sym)
{
	if (set == INF_SET_CODES)
		return INF_E(INF_K_LIT, 0, sym);
	if (set == INF_SET_DIST)
		return sym < 30 ? INF_E(INF_K_BASE, inf_dist_extra[sym], inf_dist_base[sym])
				: INF_E(INF_K_BAD, 0, 0);
	if (sym < 256)
		return INF_E(INF_K_LIT, 0, sym);
	if (sym == 256)
		return INF_E(INF_K_EOB, 0, 0);
	if (sym < 286)
		return INF_E(INF_K_BASE, inf_len_extra[sym - 257], inf_len_base[sym - 257]);
	return INF_E(INF_K_BAD, 0, 0);
}

/* Builds h for the n code lengths lens[] (each <= 15), looking up at most
 * pmax bits at once. Over-subscribed codes are malformed. Incomplete codes are
 * too, except as zlib takes them: a literal/length or distance code with no
 * codes or a single 1-bit code (its unused code then decodes as INF_K_BAD, one
 * bit long). A code length code with no codes at all decodes every bit as
 * length 0, as zlib's does (the block then fails for want of an end-of-block
 * code unless the input ends first). */
static int inf_build(struct inf_huff *h, const uint8_t *lens, uint32_t n, uint32_t pmax,
		     enum inf_set set)
{
	uint16_t next[INF_MAXBITS + 1];
	uint32_t *prim = h->prim; /* locals: prim[] stores cannot alias them */
	int32_t left = 1;
	uint32_t maxlen = 0, code = 0, idx = 0, pbits, size;

	for (uint32_t len = 0; len <= INF_MAXBITS; len++)
		h->count[len] = 0;
	for (uint32_t i = 0; i < n; i++)
		if (lens[i]) /* mostly zero in a hostile stream's many tiny codes */
			h->count[lens[i]]++;
	for (uint32_t len = 1; len <= INF_MAXBITS; len++) {
		left = left * 2 - h->count[len];
		if (left < 0)
			return INF_BAD;
		if (h->count[len])
			maxlen = len;
	}
	if (maxlen == 0) {
		uint32_t e = set == INF_SET_CODES ? INF_E(INF_K_LIT, 0, 0) : INF_E(INF_K_BAD, 0, 0);

		h->pbits = 1;
		prim[0] = prim[1] = e | 1;
		return 0;
	}
	if (left > 0) {
		if (set == INF_SET_CODES || maxlen != 1)
			return INF_BAD;
		prim[0] = prim[1] = INF_E(INF_K_BAD, 0, 0) | 1;
	}
	pbits = maxlen < pmax ? maxlen : pmax;
	size = 1u << pbits;
	h->pbits = pbits;
	for (uint32_t len = 1; len <= INF_MAXBITS; len++) {
		h->first[len] = (uint16_t)code;
		h->offs[len] = (uint16_t)idx;
		next[len] = (uint16_t)code;
		code = (code + h->count[len]) << 1;
		idx += h->count[len];
	}
	for (uint32_t sym = 0; sym < n; sym++) {
		uint32_t len = lens[sym], c, rev, e;

		if (len == 0)
			continue;
		c = next[len]++;
		rev = inf_reverse(c, len);
		e = inf_sym_entry(set, sym) | len;
		if (len <= pbits) {
			for (uint32_t i = rev; i < size; i += 1u << len)
				prim[i] = e;
		} else {
			if (!h->sorted)
				return INF_BAD;
			prim[rev & (size - 1)] = INF_E(INF_K_LONG, 0, c >> (len - pbits));
			h->sorted[h->offs[len] + c - h->first[len]] = e;
		}
	}
	return 0;
}

/* Finishes a code longer than pbits whose first pbits bits gave entry e; bb
 * holds the code at its bottom (bits past the input's end read as zero, the
 * caller checks the length against what is there). */
static uint32_t inf_long(const struct inf_huff *h, uint64_t bb, uint32_t e)
{
	uint32_t code = INF_E_VAL(e);

	for (uint32_t len = h->pbits + 1; len <= INF_MAXBITS; len++) {
		uint32_t i;

		code = code << 1 | ((uint32_t)(bb >> (len - 1)) & 1);
		i = code - h->first[len];
		if (i < h->count[len])
			return h->sorted[h->offs[len] + i];
	}
	return INF_E(INF_K_BAD, 0, 0) | INF_MAXBITS; /* unreachable for a complete code */
}

/* Decodes one symbol of h into *ret (the entry, its code consumed). */
static inline int inf_decode(struct inf *s, const struct inf_huff *h, uint32_t *ret)
{
	uint32_t e = h->prim[s->bb & ((1u << h->pbits) - 1)];

	if (INF_E_KIND(e) == INF_K_LONG)
		e = inf_long(h, s->bb, e);
	if (INF_E_LEN(e) > s->bc)
		return INF_SHORT;
	inf_drop(s, INF_E_LEN(e));
	*ret = e;
	return 0;
}

/* Decodes a length or distance: the entry's base plus its extra bits. */
static inline int inf_base(struct inf *s, uint32_t e, uint32_t *ret)
{
	uint32_t x = INF_E_EXTRA(e);

	if (x > s->bc)
		return INF_SHORT;
	*ret = INF_E_VAL(e) + ((uint32_t)s->bb & ((1u << x) - 1));
	inf_drop(s, x);
	return 0;
}

/* Copies len bytes from dist back; the caller checked dist <= op and len fits. */
static void inf_copy(uint8_t *dst, size_t dist, size_t len)
{
	const uint8_t *src = dst - dist;

	if (dist >= 8) {
		/* Every 8-byte load reads bytes already written. */
		for (; len >= 8; len -= 8, dst += 8, src += 8) {
			uint64_t v;

			__builtin_memcpy(&v, src, 8);
			__builtin_memcpy(dst, &v, 8);
		}
	} else if (dist == 1) {
		__builtin_memset(dst, *src, len);
		return;
	}
	while (len--)
		*dst++ = *src++;
}

/* Decodes the symbols of one Huffman block up to its end-of-block code. */
static inline int inf_codes_run(struct inf *s, const struct inf_huff *lit,
				const struct inf_huff *dist)
{
	for (;;) {
		uint32_t e, len, d;
		size_t room;
		int r;

		/* 48 bits cover the longest length/distance pair. */
		if (s->bc < 48)
			inf_refill(s);
		e = lit->prim[s->bb & ((1u << lit->pbits) - 1)];
		if (INF_E_KIND(e) == INF_K_LONG)
			e = inf_long(lit, s->bb, e);
		if (INF_E_LEN(e) > s->bc)
			return INF_SHORT;
		if (INF_E_KIND(e) == INF_K_LIT) {
			if (s->op == s->out_len)
				return INF_FULL;
			inf_drop(s, INF_E_LEN(e));
			s->out[s->op++] = (uint8_t)INF_E_VAL(e);
			continue;
		}
		inf_drop(s, INF_E_LEN(e));
		if (INF_E_KIND(e) == INF_K_EOB)
			return INF_NEXT;
		if (INF_E_KIND(e) != INF_K_BASE)
			return INF_BAD;
		if ((r = inf_base(s, e, &len)) != 0 || (r = inf_decode(s, dist, &e)) != 0)
			return r;
		if (INF_E_KIND(e) != INF_K_BASE)
			return INF_BAD;
		if ((r = inf_base(s, e, &d)) != 0)
			return r;
		/* zlib looks for room before it checks the distance. */
		room = s->out_len - s->op;
		if (room == 0)
			return INF_FULL;
		if (d > s->op)
			return INF_BAD;
		if (len > room) {
			inf_copy(s->out + s->op, d, room);
			s->op = s->out_len;
			return INF_FULL;
		}
		inf_copy(s->out + s->op, d, len);
		s->op += len;
	}
}

static int inf_codes(struct inf *s, const struct inf_huff *lit, const struct inf_huff *dist)
{
	struct inf t = *s; /* a local copy, so the hot state can live in registers */
	int r = inf_codes_run(&t, lit, dist);

	*s = t;
	return r;
}

static int inf_stored(struct inf *s)
{
	uint32_t len, nlen;
	int r;

	inf_drop(s, s->bc & 7);
	if ((r = inf_bits(s, 16, &len)) != 0 || (r = inf_bits(s, 16, &nlen)) != 0)
		return r;
	if (len != (~nlen & 0xffffu))
		return INF_BAD;
	/* Hand the whole bytes still in bb back to the input. */
	s->ip -= s->bc >> 3;
	s->bb = 0;
	s->bc = 0;
	while (len) {
		size_t n = len;

		if (s->op == s->out_len)
			return INF_FULL;
		if (s->ip == s->in_len)
			return INF_SHORT;
		if (n > s->out_len - s->op)
			n = s->out_len - s->op;
		if (n > s->in_len - s->ip)
			n = s->in_len - s->ip;
		__builtin_memcpy(s->out + s->op, s->in + s->ip, n);
		s->op += n;
		s->ip += n;
		len -= (uint32_t)n;
	}
	return INF_NEXT;
}

static int inf_fixed(struct inf *s)
{
	struct inf_work *w = s->w;

	if (!w->fixed_ready) {
		uint32_t i = 0;

		for (; i < 144; i++)
			w->lens[i] = 8;
		for (; i < 256; i++)
			w->lens[i] = 9;
		for (; i < 280; i++)
			w->lens[i] = 7;
		for (; i < INF_NLIT; i++)
			w->lens[i] = 8;
		for (i = 0; i < INF_NDIST; i++)
			w->lens[INF_NLIT + i] = 5;
		if (inf_build(&w->fixlit, w->lens, INF_NLIT, INF_FIXLIT_PBITS, INF_SET_LIT) != 0 ||
		    inf_build(&w->fixdist, w->lens + INF_NLIT, INF_NDIST, INF_FIXDIST_PBITS,
			      INF_SET_DIST) != 0)
			return INF_BAD; /* cannot happen: both codes are complete */
		w->fixed_ready = 1;
	}
	return inf_codes(s, &w->fixlit, &w->fixdist);
}

/* RFC 1951 §3.2.7. Field order and checks follow zlib's, so that a stream cut
 * short fails or succeeds at the same point as there. */
static int inf_dynamic(struct inf *s)
{
	struct inf_work *w = s->w;
	uint8_t clens[INF_NCODES];
	uint32_t hlit, hdist, hclen, v, i;
	int r;

	if ((r = inf_bits(s, 5, &hlit)) != 0 || (r = inf_bits(s, 5, &hdist)) != 0 ||
	    (r = inf_bits(s, 4, &hclen)) != 0)
		return r;
	hlit += 257;
	hdist += 1;
	hclen += 4;
	/* zlib refuses the codes for symbols 286, 287, 30 and 31 here. */
	if (hlit > 286 || hdist > 30)
		return INF_BAD;
	for (i = 0; i < INF_NCODES; i++)
		clens[i] = 0;
	for (i = 0; i < hclen; i++) {
		if ((r = inf_bits(s, 3, &v)) != 0)
			return r;
		clens[inf_codes_order[i]] = (uint8_t)v;
	}
	if (inf_build(&w->codes, clens, INF_NCODES, INF_CODES_PBITS, INF_SET_CODES) != 0)
		return INF_BAD;
	for (i = 0; i < hlit + hdist;) {
		uint32_t e, sym, rep, fill;

		if (s->bc < 16)
			inf_refill(s);
		if ((r = inf_decode(s, &w->codes, &e)) != 0)
			return r;
		sym = INF_E_VAL(e);
		if (sym < 16) {
			w->lens[i++] = (uint8_t)sym;
			continue;
		}
		if (sym == 16) {
			if ((r = inf_bits(s, 2, &rep)) != 0)
				return r;
			if (i == 0)
				return INF_BAD; /* nothing to repeat */
			rep += 3;
			fill = w->lens[i - 1];
		} else if (sym == 17) {
			if ((r = inf_bits(s, 3, &rep)) != 0)
				return r;
			rep += 3;
			fill = 0;
		} else {
			if ((r = inf_bits(s, 7, &rep)) != 0)
				return r;
			rep += 11;
			fill = 0;
		}
		if (rep > hlit + hdist - i)
			return INF_BAD;
		while (rep--)
			w->lens[i++] = (uint8_t)fill;
	}
	if (w->lens[256] == 0)
		return INF_BAD; /* no end-of-block code */
	if (inf_build(&w->lit, w->lens, hlit, INF_LIT_PBITS, INF_SET_LIT) != 0 ||
	    inf_build(&w->dist, w->lens + hlit, hdist, INF_DIST_PBITS, INF_SET_DIST) != 0)
		return INF_BAD;
	return inf_codes(s, &w->lit, &w->dist);
}

/* Decodes blocks until the final one ends (0), or until one fails: INF_FULL,
 * INF_SHORT or INF_BAD. */
static int inf_run(struct inf *s)
{
	struct inf_work *w = s->w;
	uint32_t hdr;
	int r;

	w->lit = (struct inf_huff){.prim = w->lit_prim, .sorted = w->lit_sorted};
	w->dist = (struct inf_huff){.prim = w->dist_prim, .sorted = w->dist_sorted};
	w->fixlit = (struct inf_huff){.prim = w->fixlit_prim};
	w->fixdist = (struct inf_huff){.prim = w->fixdist_prim};
	w->codes = (struct inf_huff){.prim = w->codes_prim};
	w->fixed_ready = 0;
	do {
		if ((r = inf_bits(s, 3, &hdr)) != 0)
			return r;
		switch (hdr >> 1) {
		case 0:
			r = inf_stored(s);
			break;
		case 1:
			r = inf_fixed(s);
			break;
		case 2:
			r = inf_dynamic(s);
			break;
		default:
			r = INF_BAD;
			break;
		}
	} while (r == INF_NEXT && !(hdr & 1));
	return r;
}

int plan_inflate(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len, void *work)
{
	struct inf s = {.in = in, .in_len = in_len, .out = out, .out_len = out_len, .w = work};
	int r = inf_run(&s);

	if (r == INF_BAD || s.op != s.out_len)
		return INSTAR_ERR_PARSE_FAILED;
	return 0;
}

int plan_inflate_whole(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len, void *work,
		       size_t *ret_out, size_t *ret_in)
{
	struct inf s = {.in = in, .in_len = in_len, .out = out, .out_len = out_len, .w = work};

	if (inf_run(&s) != INF_NEXT)
		return INSTAR_ERR_PARSE_FAILED;
	*ret_out = s.op;
	/* bb holds bc bits read ahead of the final block's end: its whole
	 * bytes go back to the input (the rest is the last byte's padding). */
	*ret_in = s.ip - (s.bc >> 3);
	return 0;
}
