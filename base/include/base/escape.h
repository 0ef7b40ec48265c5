// Escaped: text from outside ferry's control (names read from a disk image,
// such as a qcow2 backing file name or format, and the paths built from
// them) made safe to put into an error, a log line or CLI output. A crafted
// image must not be able to write terminal control sequences or fake log
// lines through a message.
#pragma once

#include <string>
#include <string_view>

namespace base {

// Printable ASCII (0x20..0x7e) is kept as is, except the backslash, which
// becomes "\\" so the escaping cannot be forged; every other byte (control
// characters, DEL, bytes >= 0x80) becomes "\xNN" with two lower-case hex
// digits. Text that needs no escaping comes back unchanged.
std::string Escaped(std::string_view text);

}  // namespace base
