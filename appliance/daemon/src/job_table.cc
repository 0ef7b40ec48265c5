// JobTable's record files (job_table.h).
#include "job_table.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/fd.h"

namespace appliance {

base::Result<std::vector<std::string>> ListJobRecordFiles(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return base::ErrnoError("create " + dir);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return base::ErrnoError("open " + dir);
  std::vector<std::string> paths;
  while (dirent* e = ::readdir(d)) {
    std::string f = e->d_name;
    if (f.size() > 5 && f.compare(f.size() - 5, 5, ".json") == 0) paths.push_back(dir + "/" + f);
  }
  ::closedir(d);
  return paths;
}

void WriteJobRecord(const std::string& dir, const std::string& id, const nlohmann::json& record) {
  if (auto st = base::WriteFileAtomically(dir + "/" + id + ".json", record.dump(2) + "\n"); !st)
    base::LogWarning("job " + id + ": " + st.error().ToString());
}

void RemoveJobRecord(const std::string& dir, const std::string& id) {
  ::unlink((dir + "/" + id + ".json").c_str());
}

}  // namespace appliance
