"""The one generic encoder and decoder: a schema compiled, once per version, to Python functions.

For each structure of a message and each version, :func:`compile_message` writes the source of
two straight-line functions and compiles them: consecutive fixed-width fields become a single
``struct.Struct`` pack or unpack, strings, bytes and arrays call the readers and writers of
:mod:`.primitives`, nested structures call their own compiled functions, and flexible versions
end every structure with its tagged fields. Nothing walks the schema per message; the cost of a
message is the cost of its fields.

Decoders take ``bytes`` and a start position and return ``(message, end)``; they check every
length against the bytes left, so a malformed message raises
:class:`~millstream.core.errors.ProtocolError` and never reads past its frame or allocates more
than the frame could describe. Unknown tagged fields are skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from itertools import count
from typing import Any

from ..errors import ProtocolError
from . import primitives as prim
from .message import Message
from .schema import Field

__all__ = ["MessageCodec", "compile_message"]

Encoder = Callable[[bytearray, Any], None]
Decoder = Callable[[bytes, int], tuple[Any, int]]

_FIXED = prim.FIXED_FORMATS


def _null(where: str) -> None:
    raise ProtocolError(f"{where} is null, but it is not nullable in this version")


def _truncated(pos: int, need: int, data: bytes, what: str) -> None:
    raise ProtocolError(
        f"truncated {what} at byte {pos}: needs {need} byte(s), only {max(len(data) - pos, 0)} left"
    )


def _tag_overrun(where: str, tag: int, end: int, pos: int) -> None:
    raise ProtocolError(f"{where}: tagged field {tag} ends at byte {pos}, declared end {end}")


_HELPERS: dict[str, Any] = {
    "_null": _null,
    "_trunc": _truncated,
    "_tag_overrun": _tag_overrun,
    "_pack": struct.pack,
    "_I32": struct.Struct(">i"),
    "_unpack_from": struct.unpack_from,
    "_bytearray": bytearray,
    "_ws": prim.write_string,
    "_wcs": prim.write_compact_string,
    "_rs": prim.read_string,
    "_rcs": prim.read_compact_string,
    "_wb": prim.write_bytes,
    "_wcb": prim.write_compact_bytes,
    "_rb": prim.read_bytes,
    "_rcb": prim.read_compact_bytes,
    "_wal": prim.write_array_length,
    "_wcal": prim.write_compact_array_length,
    "_ral": prim.read_array_length,
    "_rcal": prim.read_compact_array_length,
    "_wuv": prim.write_unsigned_varint,
    "_ruv": prim.read_unsigned_varint,
    "_ruuid": prim.read_uuid,
}


class _Compiler:
    """Writes and compiles the functions of one message in one version."""

    def __init__(self, version: int, flexible: bool) -> None:
        self.version = version
        self.flexible = flexible
        self.ns: dict[str, Any] = dict(_HELPERS)
        self.ids = count()
        self.compiled: dict[type[Message], tuple[str, str, int]] = {}

    def name(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids)}"

    def const(self, value: Any, prefix: str = "_k") -> str:
        key = self.name(prefix)
        self.ns[key] = value
        return key

    # -- a structure ----------------------------------------------------------------------

    def structure(self, cls: type[Message], where: str) -> tuple[str, str, int]:
        """Compile ``cls``'s fields for this version; returns (encoder, decoder, min size)."""
        if cls in self.compiled:
            return self.compiled[cls]
        fields = cls._schema_fields
        present = [f for f in fields if self.version in f.versions]
        present_names = {f.name for f in present}
        regular = [f for f in present if f.tag is None]
        tagged = sorted((f for f in present if f.tag is not None), key=lambda f: f.tag or 0)
        enc_name, dec_name = self.name("_e"), self.name("_d")
        enc: list[str] = [f"def {enc_name}(buf, o):"]
        dec: list[str] = [f"def {dec_name}(d, p):", "    n = len(d)"]
        min_size = 0
        run: list[Field] = []

        def flush_run() -> None:
            nonlocal min_size
            if not run:
                return
            st = struct.Struct(">" + "".join(_FIXED[f.type] for f in run))
            key = self.const(st, "_S")
            min_size += st.size
            enc.append(f"    buf += {key}.pack({', '.join('o.' + f.name for f in run)})")
            what = ", ".join(f.name for f in run)
            dec.append(
                f"    if p + {st.size} > n: _trunc(p, {st.size}, d, {where + ': ' + what!r})"
            )
            targets = "".join(f"f_{f.name}, " for f in run)
            dec.append(f"    {targets}= {key}.unpack_from(d, p)")
            dec.append(f"    p += {st.size}")
            run.clear()

        for f in regular:
            if f.type in _FIXED:
                run.append(f)
                continue
            flush_run()
            min_size += self.field_encoder(f, cls, where, f"o.{f.name}", "buf", enc, "    ")
            self.field_decoder(f, cls, where, f"f_{f.name}", "p", dec, "    ")
        flush_run()
        if self.flexible:
            min_size += 1
            self.tagged_encoder(tagged, cls, where, enc)
            self.tagged_decoder(tagged, cls, where, dec)
        args = []
        for f in fields:
            if f.name in present_names:
                args.append(f"f_{f.name}")
            else:
                args.append(self.absent(f, cls))
        cls_key = self.const(cls, "_C")
        dec.append(f"    return {cls_key}({', '.join(args)}), p")
        if len(enc) == 1:
            enc.append("    pass")
        self.define("\n".join(enc), where)
        self.define("\n".join(dec), where)
        self.compiled[cls] = (enc_name, dec_name, max(min_size, 1))
        return self.compiled[cls]

    def define(self, source: str, where: str) -> None:
        exec(compile(source, f"<codec {where} v{self.version}>", "exec"), self.ns)

    def absent(self, f: Field, cls: type[Message]) -> str:
        if f.type == "array":
            return "None" if f.default is None else "[]"
        if f.type == "struct":
            return self.const(getattr(cls, _camel(f.name)), "_C") + "()"
        return self.const(f.default_value(), "_D")

    # -- one field ------------------------------------------------------------------------

    def field_encoder(
        self,
        f: Field,
        cls: type[Message],
        where: str,
        value: str,
        out: str,
        lines: list[str],
        ind: str,
    ) -> int:
        """Append the statements that write ``value`` to ``out``; returns its minimum size."""
        nullable = self.version in f.nullable
        compact = self.flexible
        label = f"{where}.{f.name}"
        v = self.name("v")
        lines.append(f"{ind}{v} = {value}")
        if f.type in _FIXED:
            key = self.const(struct.Struct(">" + _FIXED[f.type]), "_S")
            lines.append(f"{ind}{out} += {key}.pack({v})")
            return struct.calcsize(_FIXED[f.type])
        if f.type == "uuid":
            lines.append(f"{ind}{out} += {v}.bytes")
            return 16
        if not nullable and f.type != "struct":
            lines.append(f"{ind}if {v} is None: _null({label!r})")
        if f.type == "string":
            lines.append(f"{ind}{'_wcs' if compact else '_ws'}({out}, {v})")
            return 1 if compact else 2
        if f.type in ("bytes", "records"):
            lines.append(f"{ind}{'_wcb' if compact else '_wb'}({out}, {v})")
            return 1 if compact else 4
        if f.type == "struct":
            sub_enc, _, size = self.structure(getattr(cls, _camel(f.name)), label)
            lines.append(f"{ind}{sub_enc}({out}, {v})")
            return size
        # an array
        write_len = "_wcal" if compact else "_wal"
        inner = ind
        if nullable:
            lines.append(f"{ind}if {v} is None: {write_len}({out}, None)")
            lines.append(f"{ind}else:")
            inner = ind + "    "
        x = self.name("x")
        if f.item_type in _FIXED and not compact:
            # count and items in one pack
            fmt = _FIXED[f.item_type or ""]
            lines.append(f"{inner}{out} += _pack('>i%d{fmt}' % len({v}), len({v}), *{v})")
            return 4
        if compact:
            lines.append(f"{inner}_wcal({out}, len({v}))")
        else:
            lines.append(f"{inner}{out} += _I32.pack(len({v}))")
        if f.fields:
            sub_enc, _, _ = self.structure(getattr(cls, _camel(f.name)), label)
            lines.append(f"{inner}for {x} in {v}: {sub_enc}({out}, {x})")
        elif f.item_type in _FIXED:
            fmt = _FIXED[f.item_type or ""]
            lines.append(f"{inner}{out} += _pack('>%d{fmt}' % len({v}), *{v})")
        elif f.item_type == "uuid":
            lines.append(f"{inner}for {x} in {v}: {out} += {x}.bytes")
        else:
            writer = {"string": ("_ws", "_wcs"), "bytes": ("_wb", "_wcb")}[f.item_type or ""]
            lines.append(f"{inner}for {x} in {v}:")
            lines.append(f"{inner}    if {x} is None: _null({label + '[]'!r})")
            lines.append(f"{inner}    {writer[compact]}({out}, {x})")
        return 1 if compact else 4

    def field_decoder(
        self,
        f: Field,
        cls: type[Message],
        where: str,
        target: str,
        pos: str,
        lines: list[str],
        ind: str,
    ) -> None:
        """Append the statements that read ``f`` at ``pos`` into ``target``, advancing ``pos``."""
        nullable = self.version in f.nullable
        compact = self.flexible
        label = f"{where}.{f.name}"
        if f.type in _FIXED:
            st = struct.Struct(">" + _FIXED[f.type])
            key = self.const(st, "_S")
            lines.append(f"{ind}if {pos} + {st.size} > n: _trunc({pos}, {st.size}, d, {label!r})")
            lines.append(f"{ind}{target}, = {key}.unpack_from(d, {pos})")
            lines.append(f"{ind}{pos} += {st.size}")
        elif f.type == "uuid":
            lines.append(f"{ind}{target}, {pos} = _ruuid(d, {pos})")
        elif f.type == "string":
            reader = "_rcs" if compact else "_rs"
            lines.append(f"{ind}{target}, {pos} = {reader}(d, {pos}, {nullable})")
        elif f.type in ("bytes", "records"):
            reader = "_rcb" if compact else "_rb"
            lines.append(f"{ind}{target}, {pos} = {reader}(d, {pos}, {nullable})")
        elif f.type == "struct":
            _, sub_dec, _ = self.structure(getattr(cls, _camel(f.name)), label)
            lines.append(f"{ind}{target}, {pos} = {sub_dec}(d, {pos})")
        else:
            self.array_decoder(f, cls, label, target, pos, lines, ind, nullable, compact)

    def array_decoder(
        self,
        f: Field,
        cls: type[Message],
        label: str,
        target: str,
        pos: str,
        lines: list[str],
        ind: str,
        nullable: bool,
        compact: bool,
    ) -> None:
        read_len = "_rcal" if compact else "_ral"
        count_var = self.name("c")
        if f.fields:
            _, sub_dec, item_size = self.structure(getattr(cls, _camel(f.name)), label)
        elif f.item_type in _FIXED:
            item_size = struct.calcsize(_FIXED[f.item_type or ""])
        elif f.item_type == "uuid":
            item_size = 16
        else:
            item_size = 1 if compact else (2 if f.item_type == "string" else 4)
        lines.append(f"{ind}{count_var}, {pos} = {read_len}(d, {pos}, {nullable}, {item_size})")
        inner = ind
        if nullable:
            lines.append(f"{ind}if {count_var} is None: {target} = None")
            lines.append(f"{ind}else:")
            inner = ind + "    "
        item = self.name("i")
        if f.fields:
            lines.append(f"{inner}{target} = []")
            lines.append(f"{inner}for _ in range({count_var}):")
            lines.append(f"{inner}    {item}, {pos} = {sub_dec}(d, {pos})")
            lines.append(f"{inner}    {target}.append({item})")
        elif f.item_type in _FIXED:
            fmt = _FIXED[f.item_type or ""]
            lines.append(
                f"{inner}{target} = list(_unpack_from('>%d{fmt}' % {count_var}, d, {pos}))"
            )
            lines.append(f"{inner}{pos} += {count_var} * {item_size}")
        elif f.item_type == "uuid":
            lines.append(f"{inner}{target} = []")
            lines.append(f"{inner}for _ in range({count_var}):")
            lines.append(f"{inner}    {item}, {pos} = _ruuid(d, {pos})")
            lines.append(f"{inner}    {target}.append({item})")
        else:
            reader = {"string": ("_rs", "_rcs"), "bytes": ("_rb", "_rcb")}[f.item_type or ""]
            lines.append(f"{inner}{target} = []")
            lines.append(f"{inner}for _ in range({count_var}):")
            lines.append(f"{inner}    {item}, {pos} = {reader[compact]}(d, {pos}, False)")
            lines.append(f"{inner}    {target}.append({item})")

    # -- tagged fields --------------------------------------------------------------------

    def tagged_encoder(
        self, tagged: list[Field], cls: type[Message], where: str, enc: list[str]
    ) -> None:
        if not tagged:
            enc.append("    buf.append(0)")
            return
        enc.append("    tags = []")
        for f in tagged:
            if f.type == "struct":
                default = self.const(getattr(cls, _camel(f.name))(), "_D")
            else:
                default = self.const(f.default_value(), "_D")
            v = self.name("t")
            enc.append(f"    {v} = o.{f.name}")
            enc.append(f"    if {v} != {default}:")
            enc.append("        tb = _bytearray()")
            self.field_encoder(f, cls, where, v, "tb", enc, "        ")
            enc.append(f"        tags.append(({f.tag}, tb))")
        enc.append("    _wuv(buf, len(tags))")
        enc.append("    for tag, tb in tags:")
        enc.append("        _wuv(buf, tag)")
        enc.append("        _wuv(buf, len(tb))")
        enc.append("        buf += tb")

    def tagged_decoder(
        self, tagged: list[Field], cls: type[Message], where: str, dec: list[str]
    ) -> None:
        for f in tagged:
            dec.append(f"    f_{f.name} = {self.absent(f, cls)}")
        dec.append("    tag_count, p = _ruv(d, p)")
        dec.append(
            f"    if tag_count * 2 > n - p: _trunc(p, tag_count * 2, d, {where + ' tags'!r})"
        )
        dec.append("    for _ in range(tag_count):")
        dec.append("        tag, p = _ruv(d, p)")
        dec.append("        size, p = _ruv(d, p)")
        dec.append("        end = p + size")
        dec.append(f"        if end > n: _trunc(p, size, d, {where + ' tagged field'!r})")
        for i, f in enumerate(tagged):
            dec.append(f"        {'if' if i == 0 else 'elif'} tag == {f.tag}:")
            dec.append("            q = p")
            self.field_decoder(f, cls, where, f"f_{f.name}", "q", dec, "            ")
            dec.append(f"            if q != end: _tag_overrun({where!r}, tag, end, q)")
        dec.append("        p = end")


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


class MessageCodec:
    """A message class compiled for one version: ``encode`` and ``decode`` it.

    ``what`` names it in errors (``"Metadata v8 request"``).
    """

    __slots__ = ("_decode", "_encode", "flexible", "message_class", "version", "what")

    def __init__(
        self,
        message_class: type[Message],
        version: int,
        flexible: bool,
        encode: Encoder,
        decode: Decoder,
        what: str,
    ) -> None:
        self.message_class = message_class
        self.version = version
        self.flexible = flexible
        self._encode = encode
        self._decode = decode
        self.what = what

    def encode_into(self, buf: bytearray, message: Any) -> None:
        """Append ``message`` to ``buf``; a value that cannot be encoded is a ProtocolError."""
        try:
            self._encode(buf, message)
        except ProtocolError as exc:
            raise ProtocolError(f"cannot encode {self.what}: {exc}") from None
        except (struct.error, TypeError, AttributeError, ValueError, OverflowError) as exc:
            raise ProtocolError(f"cannot encode {self.what}: {exc}") from None

    def encode(self, message: Any) -> bytes:
        """``message`` as bytes."""
        buf = bytearray()
        self.encode_into(buf, message)
        return bytes(buf)

    def decode(self, data: bytes, pos: int = 0) -> tuple[Any, int]:
        """Decode one message at ``pos``; returns it and the position after it."""
        try:
            return self._decode(data, pos)
        except ProtocolError as exc:
            raise ProtocolError(f"malformed {self.what}: {exc}") from None
        except (struct.error, ValueError, IndexError, OverflowError, MemoryError) as exc:
            raise ProtocolError(f"malformed {self.what}: {exc}") from None

    def decode_all(self, data: bytes, pos: int = 0) -> Any:
        """Decode one message that must end exactly where ``data`` ends."""
        message, end = self.decode(data, pos)
        if end != len(data):
            raise ProtocolError(
                f"malformed {self.what}: {len(data) - end} unexpected byte(s) after the message"
            )
        return message


def compile_message(
    message_class: type[Message], version: int, flexible: bool, what: str
) -> MessageCodec:
    """Compile ``message_class`` (made by :func:`~.message.make_message_class`) for ``version``."""
    compiler = _Compiler(version, flexible)
    enc_name, dec_name, _ = compiler.structure(message_class, message_class.__qualname__)
    return MessageCodec(
        message_class,
        version,
        flexible,
        compiler.ns[enc_name],
        compiler.ns[dec_name],
        what,
    )
